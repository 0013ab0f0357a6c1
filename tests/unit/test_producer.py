"""The producer helper without a broker: publish_all's deadline (fake clock) and
track_pattern_execution's arguments, v1's and seed 000's (a recording fake producer)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from tests.strategies import example_document
from worker import producer as producer_module
from worker.contract import json_codec
from worker.contract.event import ExecutionEvent
from worker.contract.validate import validate
from worker.errors import BrokerUnavailableError
from worker.kafka import client as kafka_client
from worker.producer import ExecutionFigures, execution_figures, track_pattern_execution
from worker.settings import KafkaSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class SlowSends:
    """send() takes `send_seconds` of the fake clock, as when the send buffer is full."""

    def __init__(self, clock: FakeClock, send_seconds: float) -> None:
        self.clock = clock
        self.send_seconds = send_seconds
        self.sent = 0

    def __call__(self, **options: Any) -> SlowSends:
        del options
        return self

    def send(self, topic: str, key: bytes, value: bytes, headers: list[Any]) -> Any:
        del topic, key, value, headers
        self.clock.now += self.send_seconds
        self.sent += 1
        return SimpleNamespace(get=lambda timeout: None)


def events(count: int) -> list[ExecutionEvent]:
    return [
        validate(example_document(event_id=f"{n + 1:08x}-0000-4000-8000-000000000000"))
        for n in range(count)
    ]


def publisher(monkeypatch: pytest.MonkeyPatch, send_seconds: float) -> tuple[Any, SlowSends]:
    clock = FakeClock()
    fake = SlowSends(clock, send_seconds)
    monkeypatch.setattr(kafka_client, "KafkaProducer", fake)  # what worker.kafka builds
    monkeypatch.setattr(producer_module, "time", clock)
    settings = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:9", topic="t")
    return producer_module.ExecutionEventProducer(settings), fake


def test_publish_all_sends_every_event_within_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    producer, fake = publisher(monkeypatch, send_seconds=0.1)
    producer.publish_all(events(10), timeout=5)
    assert fake.sent == 10


def test_a_send_buffer_that_stays_full_ends_publish_all_at_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer, fake = publisher(monkeypatch, send_seconds=1.0)
    with pytest.raises(
        BrokerUnavailableError, match=r"took only 3 of the 10 event\(s\) within 2.5 s"
    ):
        producer.publish_all(events(10), timeout=2.5)
    assert fake.sent == 3


# --------------------------------------------------------------------------- seed 000's arguments


class Recorder:
    """A kafka-python producer stand-in that keeps what was sent and acknowledges at once."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    def __call__(self, **options: Any) -> Recorder:
        del options
        return self

    def send(self, topic: str, key: bytes, value: bytes, headers: list[Any]) -> Any:
        del topic, key, headers
        self.values.append(value)
        return SimpleNamespace(get=lambda timeout: None)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """track_pattern_execution's default producer, publishing into a Recorder."""
    recorder = Recorder()
    monkeypatch.setattr(kafka_client, "KafkaProducer", recorder)
    settings = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:9", topic="t")
    monkeypatch.setattr(
        producer_module, "_default", producer_module.ExecutionEventProducer(settings)
    )
    return recorder


def only_event(recorder: Recorder) -> ExecutionEvent:
    [value] = recorder.values
    return validate(json_codec.loads(value.decode()))


def test_the_seed_call_maps_onto_a_v1_event(sent: Recorder) -> None:
    """Seed 000's positional call: end - start exactly, int workflow_id as text, error kept,
    executed_at at end_time, costs from the seed's calculate_cost (here: exact Decimals)."""
    start, end = 1_764_979_200.1, 1_764_979_212.35  # float end - start is 12.25000000...
    event_id = track_pattern_execution(
        "test-retry-automation",
        1842,
        start,
        end,
        300.0,
        False,
        "lint step timed out",
        calculate_cost=lambda seconds: seconds * Decimal("0.0035"),
    )
    event = only_event(sent)
    assert event.event_id == event_id
    assert event.workflow_id == "1842"
    assert event.execution_time_seconds == Decimal("12.25")
    assert event.estimated_time_seconds == Decimal("300.0")
    assert event.actual_cost == Decimal("0.042875")  # 12.25 * 0.0035, not rounded
    assert event.estimated_cost == Decimal("1.05000")
    assert event.success is False
    assert event.error_message == "lint step timed out"
    assert event.executed_at == datetime(2025, 12, 6, 0, 0, 12, 350000, tzinfo=UTC)


def test_cost_per_second_is_exact_and_keywords_work_as_well(sent: Recorder) -> None:
    """cost_per_second as a string times the exact durations; the seed's names by keyword."""
    track_pattern_execution(
        "dependency-cache",
        workflow_id="wf-7",
        start_time=Decimal("100.5"),
        end_time=Decimal("160.6"),
        estimated_time=600,
        success=True,
        cost_per_second="0.1",
        executed_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
    )
    event = only_event(sent)
    assert (event.execution_time_seconds, event.actual_cost) == (Decimal("60.1"), Decimal("6.01"))
    assert event.estimated_cost == Decimal("60.0")
    assert event.executed_at == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)  # given: not end_time


def test_v1_calls_are_unchanged(sent: Recorder) -> None:
    """The contract's names alone, as before: the same event as ever, event_id included."""
    given = uuid.UUID("6f1c2b8e-4d3a-4f5b-9c2d-1e0f3a4b5c6d")
    track_pattern_execution(
        "test-retry-automation",
        event_id=given,
        success=True,
        execution_time_seconds=0.1,
        estimated_time_seconds=300,
        actual_cost="0.42",
        estimated_cost="25.00",
        error_message=None,
        quality_score=Decimal("0.9"),
    )
    event = only_event(sent)
    assert event.event_id == given
    assert (event.execution_time_seconds, event.actual_cost) == (Decimal("0.1"), Decimal("0.42"))
    assert (event.workflow_id, event.error_message) == (None, None)
    assert event.quality_score == Decimal("0.9")
    assert event.unknown_fields == {}


V1: dict[str, Any] = {
    "success": True,
    "execution_time_seconds": 1,
    "estimated_time_seconds": 2,
    "actual_cost": "0.01",
    "estimated_cost": "1",
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"eror_message": "typo"}, r"unexpected keyword argument 'eror_message'"),
        ({"error": "a", "error_message": "b"}, r"pass error or error_message, not both"),
        ({"estimated_time": 2}, r"pass estimated_time or estimated_time_seconds, not both"),
        ({"start_time": 1.0, "end_time": 2.0}, r"start_time and end_time or execution_time_sec"),
        ({"execution_time_seconds": None, "start_time": 1.0}, r"start_time and end_time go"),
        ({"execution_time_seconds": None}, r"missing argument: execution_time_seconds"),
        ({"estimated_time_seconds": None}, r"missing argument: estimated_time_seconds"),
        ({"actual_cost": None}, r"missing argument: actual_cost and estimated_cost"),
        ({"cost_per_second": "0.1"}, r"pass cost_per_second or actual_cost, not both"),
        (
            {"actual_cost": None, "calculate_cost": Decimal, "estimated_cost": "1"},
            r"pass calculate_cost or estimated_cost, not both",
        ),
        (
            {
                "actual_cost": None,
                "estimated_cost": None,
                "cost_per_second": 1,
                "calculate_cost": Decimal,
            },
            r"pass cost_per_second or calculate_cost, not both",
        ),
        ({"success": None}, r"missing required argument: 'success'"),
        ({"execution_time_seconds": None, "start_time": True, "end_time": 2}, r"start_time must"),
    ],
)
def test_a_missing_doubled_or_unknown_argument_is_a_type_error(
    sent: Recorder, changes: dict[str, Any], message: str
) -> None:
    """Never an unknown field, never one figure given two ways: TypeError, nothing sent."""
    with pytest.raises(TypeError, match=message):
        track_pattern_execution("p", **(V1 | changes))
    assert sent.values == []


def test_end_before_start_is_a_value_error(sent: Recorder) -> None:
    """A negative execution time says which two times are the wrong way round."""
    with pytest.raises(ValueError, match=r"end_time \(10.5\) is before start_time \(12.0\)"):
        track_pattern_execution("p", "wf", 12.0, 10.5, 300, True, cost_per_second="0.01")
    assert sent.values == []


def test_track_refuses_keywords_the_contract_does_not_define(sent: Recorder) -> None:
    """ExecutionEventProducer.track has the same rule: a typo is not an unknown field."""
    assert producer_module._default is not None
    with pytest.raises(TypeError, match="free-form data goes in attributes"):
        producer_module._default.track("p", **V1, flavour="x")
    assert sent.values == []


def test_execution_figures_never_go_through_float_arithmetic() -> None:
    """0.3 - 0.1 is 0.2 on the printed decimals (as a float it is 0.19999999999999998)."""
    figures = execution_figures(
        start_time=0.1, end_time=0.3, estimated_time=0.7, cost_per_second=0.1
    )
    assert figures == ExecutionFigures(Decimal("0.2"), 0.7, Decimal("0.02"), Decimal("0.07"))
