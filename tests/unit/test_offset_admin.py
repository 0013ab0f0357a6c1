"""The pure parts of `roi-worker offsets`: moments, lag, plans and their rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from worker.cli.offsets import positions_document, render_plan, render_positions
from worker.ops.offsets import (
    EARLIEST,
    GroupMembers,
    PartitionPosition,
    PartitionReset,
    ResetPlan,
    ResetTarget,
    parse_moment,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T00:00:00Z", datetime(2026, 11, 20, tzinfo=UTC)),
        (
            "2026-11-20T01:30:00+01:00",
            datetime(2026, 11, 20, 1, 30, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("2026-11-20T00:00:00.250+00:00", datetime(2026, 11, 20, 0, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_moments_with_a_timezone_parse(text: str, expected: datetime) -> None:
    """ISO 8601 date-times with Z or a numeric offset are accepted as the instant they name."""
    assert parse_moment(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-11-20T00:00:00", "has no timezone offset"),
        ("2026-11-20", "has no timezone offset"),
        ("yesterday", "is not an ISO 8601 date and time"),
        ("1969-12-31T23:59:59Z", "is before 1970"),
    ],
)
def test_moments_without_a_timezone_or_before_1970_are_refused(text: str, reason: str) -> None:
    """Naive, unparseable and pre-1970 moments (Kafka reads negative times as special) fail."""
    with pytest.raises(ValueError, match=reason):
        parse_moment(text)


def test_a_naive_target_cannot_be_built() -> None:
    """ResetTarget checks its moment, so no code path can look up a naive time."""
    with pytest.raises(ValueError, match="no timezone offset"):
        ResetTarget(datetime(2026, 11, 20))


def test_lag_counts_from_the_stored_offset_or_else_the_first() -> None:
    """Lag is end - stored, and end - first while nothing is stored."""
    assert PartitionPosition(0, 40, 30, 10, 100).lag == 60
    assert PartitionPosition(0, None, None, 10, 100).lag == 90
    assert PartitionPosition(0, 120, 120, 0, 100).lag == -20


@pytest.mark.parametrize(
    ("state", "count", "live"),
    [("Empty", 0, False), ("Dead", 0, False), ("Stable", 1, True), ("PreparingRebalance", 0, True)],
)
def test_a_group_is_live_with_members_or_while_rebalancing(
    state: str, count: int, live: bool
) -> None:
    """Only an Empty or Dead group without members may be reset."""
    assert GroupMembers("g", state, count).live is live


def test_a_plan_counts_messages_read_again_and_skipped() -> None:
    """Moving back re-reads, moving forward skips, and no stored offset counts from the first."""
    plan = ResetPlan(
        "g",
        "t",
        EARLIEST,
        (
            PartitionReset(0, 500, 0, 0, 500),
            PartitionReset(1, None, 5, 5, 9),
            PartitionReset(2, 100, 130, 0, 200),
        ),
    )
    assert [p.change for p in plan.partitions] == [-500, 0, 30]
    assert (plan.rereads, plan.skips) == (500, 30)


def test_the_plan_is_an_aligned_table_with_totals() -> None:
    """The rendered plan shows each partition's stored, new, first, end offsets and change."""
    moment = datetime(2026, 11, 20, tzinfo=UTC)
    plan = ResetPlan(
        "g",
        "t",
        ResetTarget(moment),
        (PartitionReset(0, 1500, 0, 0, 1500), PartitionReset(1, None, 7, 7, 7)),
    )
    assert render_plan(plan).splitlines() == [
        "plan: reset group g on topic t to the first offsets at or after 2026-11-20T00:00:00+00:00",
        "partition  stored  new  first   end  change",
        "0            1500    0      0  1500  re-reads 1500",
        "1               -    7      7     7  unchanged",
        "2 partitions: 1,500 messages to read again (already stored ones are duplicates)",
    ]


def test_positions_render_as_text_with_notes_and_as_json_with_stable_keys() -> None:
    """show's table flags anomalies in a note column; its JSON keeps null for missing offsets."""
    found = [
        PartitionPosition(0, 10, 10, 0, 10),
        PartitionPosition(1, None, None, 0, 4),
        PartitionPosition(2, 50, 50, 0, 20),
    ]
    members = GroupMembers("g", "Empty", 0)
    assert render_positions("g", "t", members, found).splitlines() == [
        "group g on topic t: no live members (state Empty)",
        "partition  stored  committed  first  end  lag  note",
        "0              10         10      0   10    0",
        "1               -          -      0    4    4  nothing stored yet",
        "2              50         50      0   20  -30  stored beyond the end: topic recreated?",
        "total                                     -26",
    ]
    document = positions_document("g", "t", GroupMembers("g", "Stable", 2), found[1:2])
    assert document == {
        "group": "g",
        "topic": "t",
        "group_state": "Stable",
        "live_members": 2,
        "partitions": [
            {
                "partition": 1,
                "stored_offset": None,
                "committed_offset": None,
                "first_offset": 0,
                "end_offset": 4,
                "lag": 4,
            }
        ],
        "total_lag": 4,
    }
