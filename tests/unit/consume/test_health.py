"""WorkerStatus: what /readyz and /healthz answer."""

from __future__ import annotations

from worker.consume.health import WorkerStatus


def test_ready_needs_the_loop_ready_and_no_open_problem() -> None:
    """An open problem (the broker unreachable) makes the worker not ready, naming it."""
    status = WorkerStatus()
    assert status.ready() == (False, "starting")
    status.set_ready(True)
    assert status.ready() == (True, "ready")
    status.set_problem("kafka", "Kafka: cannot read end offsets")
    assert status.ready() == (False, "Kafka: cannot read end offsets")
    status.set_problem("kafka", None)
    assert status.ready() == (True, "ready")


def test_a_stalled_worker_is_neither_alive_nor_ready() -> None:
    """/healthz fails while stalled, so an orchestrator restarts the worker."""
    status = WorkerStatus()
    status.set_ready(True)
    assert status.alive() == (True, "alive")
    status.set_stalled("stalled: t/0")
    status.set_problem("stalled", "stalled: t/0")
    assert status.alive() == (False, "stalled: t/0")
    assert status.ready() == (False, "stalled: t/0")
    status.set_stalled(None)
    assert status.alive() == (True, "alive")


def test_not_ready_names_the_loop_reason_and_every_problem() -> None:
    """A database outage and a stall are both on /readyz, the loop's reason first."""
    status = WorkerStatus()
    status.set_ready(False, "PostgreSQL: connection refused")
    status.set_problem("stalled", "stalled: t/0")
    assert status.ready() == (False, "PostgreSQL: connection refused; stalled: t/0")
