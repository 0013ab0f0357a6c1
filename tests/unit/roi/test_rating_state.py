"""worker.roi.rating_state: what a state is, when it changes, and the event it is published as."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from worker.roi.methodology import Rating, Totals
from worker.roi.rating_state import (
    SNAPSHOT_STATUSES,
    PatternState,
    Recorded,
    Transition,
    changes,
    event_json,
    event_of,
    event_schema,
    state_of,
)
from worker.roi.snapshots import SnapshotStatus

GOOD = Totals(
    executions=20,
    successful_executions=18,
    cost_saved_usd=Decimal("30.00"),
    investment_usd=Decimal("10.00"),
)
FAILED = Totals(
    executions=20,
    successful_executions=4,
    cost_saved_usd=Decimal("-5.50"),
    investment_usd=Decimal("11.00"),
)
AT = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def test_the_state_is_the_rating_and_the_snapshot_status() -> None:
    """The rating comes from methodology.rate with the given min_executions; the status is
    kept as its value."""
    assert state_of(GOOD, None, 10) == PatternState(Rating.GOOD, None)
    assert state_of(GOOD, SnapshotStatus.AT_RISK, 10) == PatternState(Rating.GOOD, "at_risk")
    assert state_of(GOOD, None, 21).rating is Rating.INSUFFICIENT_DATA
    assert state_of(FAILED, "off_track", 10) == PatternState(Rating.FAILED, "off_track")


def test_a_first_state_is_transition_one_from_nothing() -> None:
    """A pattern without a recorded state gets sequence 1 and no old state."""
    [first] = changes({"p": (PatternState(Rating.GOOD, None), GOOD)}, {})
    assert (first.pattern_id, first.sequence, first.old) == ("p", 1, None)
    assert first.new == PatternState(Rating.GOOD, None)
    assert first.totals == GOOD


def test_an_unchanged_state_records_nothing() -> None:
    """Same rating and status as recorded: no transition, whatever the figures did."""
    recorded = {"p": Recorded(PatternState(Rating.GOOD, "on_track"), 4)}
    assert changes({"p": (PatternState(Rating.GOOD, "on_track"), GOOD)}, recorded) == []


@pytest.mark.parametrize(
    "new",
    [PatternState(Rating.FAILED, "on_track"), PatternState(Rating.GOOD, "at_risk")],
    ids=["rating", "snapshot status"],
)
def test_a_change_of_either_part_is_the_next_sequence(new: PatternState) -> None:
    """A changed rating or snapshot status is sequence previous + 1, from the recorded state."""
    old = PatternState(Rating.GOOD, "on_track")
    [change] = changes({"p": (new, FAILED)}, {"p": Recorded(old, 4)})
    assert (change.sequence, change.old, change.new) == (5, old, new)


def test_changes_come_in_pattern_id_order() -> None:
    """The order their state rows are locked in, so that replicas cannot deadlock."""
    state = PatternState(Rating.GOOD, None)
    current = dict.fromkeys(("zeta", "alpha", "mid"), (state, GOOD))
    assert [t.pattern_id for t in changes(current, {})] == ["alpha", "mid", "zeta"]


def test_good_failed_good_is_three_transitions_in_order() -> None:
    """The issue's stream, step by step: each step's state recorded, then compared."""
    recorded: dict[str, Recorded] = {}
    seen = []
    for totals in (GOOD, GOOD, FAILED, FAILED, GOOD):
        state = state_of(totals, None, 10)
        for t in changes({"p": (state, totals)}, recorded):
            recorded["p"] = Recorded(t.new, t.sequence)
            seen.append((t.sequence, t.old and t.old.rating, t.new.rating))
    assert seen == [
        (1, None, Rating.GOOD),
        (2, Rating.GOOD, Rating.FAILED),
        (3, Rating.FAILED, Rating.GOOD),
    ]


def transition(**overrides: object) -> Transition:
    values: dict[str, object] = {
        "pattern_id": "test-retry-automation",
        "sequence": 2,
        "old": PatternState(Rating.GOOD, None),
        "new": PatternState(Rating.FAILED, "off_track"),
        "totals": FAILED,
        "occurred_at": AT,
    }
    return Transition(**(values | overrides))  # type: ignore[arg-type]


def test_the_event_carries_the_change_and_the_figures_as_strings() -> None:
    """Money exact, ratios rounded to six places, all as strings; the new rating's advice."""
    event = event_json(transition())
    assert event == {
        "schema_version": 1,
        "event_type": "pattern-rating-changed",
        "pattern_id": "test-retry-automation",
        "sequence": 2,
        "occurred_at": "2026-03-04T05:06:07.890000Z",
        "old": {"rating": "good", "snapshot_status": None},
        "new": {"rating": "failed", "snapshot_status": "off_track"},
        "figures": {
            "executions": 20,
            "successful_executions": 4,
            "success_rate": "0.200000",
            "wilson_lower_bound": event["figures"]["wilson_lower_bound"],
            "cost_saved_usd": "-5.50",
            "investment_usd": "11.00",
            "roi_percentage": "-50.000000",
        },
        "recommendation": "Revoke approval and investigate failures",
    }
    assert Decimal("0.08") < Decimal(event["figures"]["wilson_lower_bound"]) < Decimal("0.2")


def test_a_first_transition_has_no_old_state_and_times_are_utc() -> None:
    """old is null for sequence 1; an occurred_at in another zone is given in UTC."""
    elsewhere = AT.astimezone(timezone(timedelta(hours=2)))
    event = event_json(transition(sequence=1, old=None, occurred_at=elsewhere))
    assert event["old"] is None
    assert event["occurred_at"] == "2026-03-04T05:06:07.890000Z"


def test_the_same_transition_is_the_same_bytes() -> None:
    """A re-send after a crash is identical, so consumers can compare as well as dedupe."""
    assert event_of(transition()).model_dump_json() == event_of(transition()).model_dump_json()


def test_an_unrecorded_transition_has_no_event() -> None:
    """occurred_at is the recording's time: without it there is nothing to publish."""
    with pytest.raises(ValueError, match="recorded"):
        event_of(transition(occurred_at=None))


def test_events_validate_against_the_published_schema() -> None:
    """Other languages' validators accept what the publisher sends (as a JSON parser sees it)."""
    validator = Draft202012Validator(event_schema())
    Draft202012Validator.check_schema(event_schema())
    for t in (transition(), transition(sequence=1, old=None, totals=Totals())):
        document = json.loads(event_of(t).model_dump_json())
        assert list(validator.iter_errors(document)) == []


def test_the_event_knows_every_snapshot_status() -> None:
    """The schema's statuses are worker.roi.snapshots' own."""
    assert set(SNAPSHOT_STATUSES) == {status.value for status in SnapshotStatus}


def test_the_contract_page_shows_a_real_event() -> None:
    """docs/event-contract.md's example is exactly what the worker publishes for it."""
    page = (Path(__file__).parents[3] / "docs" / "event-contract.md").read_text(encoding="utf-8")
    section = page.split("## Rating transitions", 1)[1]
    example = re.search(r"```jsonc\n(?P<body>.*?)\n```", section, re.DOTALL)
    assert example is not None
    assert json.loads(example["body"]) == event_json(transition())
