"""The demo's sample stream and its table, without Kafka or a database."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from worker.contract.validate import parse_event, validate
from worker.demo.run import PatternRoi, format_table
from worker.demo.stream import (
    CONFLICTS,
    DUPLICATES,
    EVENTS,
    HISTORY,
    PROFILES,
    RATING_CHANGE,
    RATING_CHANGE_FAILURES,
    RATING_CHANGE_SUCCESSES,
    SEED,
    SampleRun,
    Step,
    plan_rating_change,
    plan_stream,
)
from worker.errors import InvalidEventError
from worker.roi.methodology import Rating, Totals, rate

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


class Recorder:
    """Stands in for ExecutionEventProducer: records what `track` was called with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def track(self, pattern_id: str, **fields: Any) -> None:
        self.calls.append({"pattern_id": pattern_id, **fields})


def tracked(run: SampleRun) -> dict[str, Any]:
    recorder = Recorder()
    run.track(recorder)  # type: ignore[arg-type]  # duck-typed stand-in
    return recorder.calls[0]


def test_the_stream_has_the_planned_mix_in_a_valid_order() -> None:
    """Events in executed_at order over HISTORY; every re-send after its original,
    exact duplicates identical, the conflict differing only in cost; money has whole cents."""
    steps = plan_stream(random.Random(SEED), NOW)
    kinds = [step.kind for step in steps]
    assert kinds.count("event") == EVENTS
    assert kinds.count("duplicate") == DUPLICATES
    assert kinds.count("conflict") == CONFLICTS
    assert kinds.count("invalid") == 5
    events = [step.run for step in steps if step.kind == "event" and step.run]
    assert {run.pattern_id for run in events} == {p.pattern_id for p in PROFILES}
    times = [run.executed_at for run in events]
    assert times == sorted(times)
    assert times[0] >= NOW - HISTORY
    assert times[-1] < NOW
    for run in events:
        for amount in (run.actual_cost, run.estimated_cost):
            assert isinstance(amount, Decimal)
            assert amount.as_tuple().exponent == -2
    position = {s.run.event_id: i for i, s in enumerate(steps) if s.kind == "event" and s.run}
    for index, step in enumerate(steps):
        if step.kind in ("duplicate", "conflict"):
            assert step.run is not None
            original = next(r for r in events if r.event_id == step.run.event_id)
            assert position[original.event_id] < index
            if step.kind == "duplicate":
                assert tracked(step.run) == tracked(original)
            else:
                assert step.run.actual_cost != original.actual_cost
                assert step.run.pattern_id == original.pattern_id  # same key, same partition


def test_runs_carry_outcomes_consistent_with_success_quality_and_tokens() -> None:
    """Every outcome the contract allows appears, each consistent with `success`; quality
    scores and token counts appear where a profile reports them, and not everywhere."""
    runs = [s.run for s in plan_stream(random.Random(SEED), NOW) if s.kind == "event" and s.run]
    allowed = {True: {"success", "partial_success"}, False: {"failure", "error"}}
    for run in runs:
        assert run.outcome in allowed[run.success]
    assert {run.outcome for run in runs} == {"success", "partial_success", "failure", "error"}
    assert 0 < sum(run.quality_score is not None for run in runs) < len(runs)
    assert 0 < sum(run.tokens is not None for run in runs) < len(runs)
    assert all(b >= 0 and a >= 0 for b, a in (run.tokens for run in runs if run.tokens))


def _rating(*phases: list[Step]) -> Rating:
    totals = Totals()
    for step in (step for phase in phases for step in phase):
        assert step.run is not None
        run = step.run
        totals += Totals.of_execution(
            success=run.success,
            execution_time_seconds=run.execution_time_seconds,
            estimated_time_seconds=run.estimated_time_seconds,
            actual_cost=run.actual_cost,
            estimated_cost=run.estimated_cost,
        )
    return rate(totals)


def test_the_rating_change_pattern_is_excellent_then_failed_and_changes_again_each_run() -> None:
    """Its good phase alone rates excellent, both phases a net loss (failed); a second demo
    run first lifts it (poor) and then fails it again, so every run records transitions."""
    good, bad = plan_rating_change(random.Random(SEED), NOW)
    assert len(good) == RATING_CHANGE_SUCCESSES
    assert len(bad) == RATING_CHANGE_FAILURES
    assert {s.run.pattern_id for s in good + bad if s.run} == {RATING_CHANGE.pattern_id}
    assert _rating(good) is Rating.EXCELLENT
    assert _rating(good, bad) is Rating.FAILED
    assert _rating(good, bad, good) is Rating.POOR
    assert _rating(good, bad, good, bad) is Rating.FAILED


def test_every_event_is_valid_and_every_invalid_message_is_rejected() -> None:
    """What the demo counts as valid passes the contract; each broken message fails it."""
    steps = plan_stream(random.Random(SEED), NOW)
    for step in steps:
        assert step.run is not None
        if step.kind == "invalid":
            with pytest.raises(InvalidEventError):
                parse_event(step.value, now=NOW)
        else:
            validate(step.run.document(), now=NOW)


def test_a_fixed_seed_gives_the_same_figures_with_new_event_ids() -> None:
    """A second run publishes the same amounts as new events."""
    first = plan_stream(random.Random(SEED), NOW)
    second = plan_stream(random.Random(SEED), NOW)
    assert [s.run.actual_cost for s in first if s.run] == [
        s.run.actual_cost for s in second if s.run
    ]
    assert {s.run.event_id for s in first if s.run}.isdisjoint(
        {s.run.event_id for s in second if s.run}
    )


def test_table_has_a_row_per_pattern_and_exact_totals() -> None:
    """Rates and ROI come from the sums; the total row adds them up; no spend: ROI n/a."""
    rows = [
        PatternRoi("good", 4, 3, Decimal(7200), Decimal("30.00"), Decimal("10.00")),
        PatternRoi("bad", 2, 1, Decimal(-360), Decimal("-1.10"), Decimal("2.20")),
        PatternRoi("free", 1, 1, Decimal(0), Decimal("0.10"), Decimal(0)),
    ]
    lines = format_table(rows)
    assert lines[0].split() == [
        "pattern",
        "executions",
        "success",
        "time",
        "saved",
        "(s)",
        "time",
        "saved",
        "(h)",
        "cost",
        "saved",
        "ROI",
    ]
    assert lines[2].split() == ["good", "4", "75.0", "%", "7,200", "2.0", "$30.00", "300.0", "%"]
    assert lines[3].split() == ["bad", "2", "50.0", "%", "-360", "-0.1", "-$1.10", "-50.0", "%"]
    assert lines[4].split() == ["free", "1", "100.0", "%", "0", "0.0", "$0.10", "n/a"]
    assert lines[-1].split() == ["total", "7", "71.4", "%", "6,840", "1.9", "$29.00", "237.7", "%"]
