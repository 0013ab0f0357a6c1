"""The pure parts of `roi-worker offsets`: moments, ages, lag, plans and their rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from worker.cli.offsets import (
    positions_document,
    render_plan,
    render_positions,
    render_prune_outcomes,
    render_prune_plan,
)
from worker.db.offsets import GroupActivity, Pruned
from worker.ops.offsets import (
    EARLIEST,
    GroupMembers,
    PartitionPosition,
    PartitionReset,
    PruneCandidate,
    PruneOutcome,
    PrunePlan,
    PruneRule,
    ResetPlan,
    ResetTarget,
    describe_age,
    parse_age,
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


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        (" 1d ", timedelta(days=1)),
        ("36500d", timedelta(days=36_500)),
        ("876000h", timedelta(days=36_500)),
    ],
)
def test_ages_are_whole_days_or_hours(text: str, expected: timedelta) -> None:
    """--older-than takes a positive whole number of days (d) or hours (h)."""
    assert parse_age(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("30", "is not an age"),
        ("0d", "is not an age"),
        ("3.5d", "is not an age"),
        ("30D", "is not an age"),
        ("30m", "is not an age"),
        ("-1d", "is not an age"),
        ("d", "is not an age"),
        ("\u0663d", "is not an age"),  # a digit, but not an ASCII one
        ("36501d", "is more than 36500d"),
        ("99999999999999999999h", "is more than 36500d"),
    ],
)
def test_other_ages_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_age(text)


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(days=30), "30 days"),
        (timedelta(days=1, hours=5), "1 day"),
        (timedelta(hours=12), "12 hours"),
        (timedelta(minutes=61), "1 hour"),
        (timedelta(minutes=2), "2 minutes"),
        (timedelta(seconds=5), "1 minute"),
    ],
)
def test_ages_are_described_in_their_largest_whole_unit(age: timedelta, text: str) -> None:
    assert describe_age(age) == text


def activity(group: str, days_ago: float, **counts: int) -> GroupActivity:
    values = {"partitions": 3, "ledger_deleted": 4, "ledger_kept": 0, "ledger_unarchived": 0}
    values |= counts
    return GroupActivity(
        group,
        values["partitions"],
        values["ledger_deleted"],
        values["ledger_kept"],
        values["ledger_unarchived"],
        counts.get("executions", 0),
        NOW - timedelta(days=days_ago),
    )


def test_a_group_is_stale_after_the_age_and_the_live_group_only_when_named() -> None:
    """Last written before now - age: stale. ROI_GROUP_ID stays unless it is the named group,
    and even then only when stale."""
    rule = PruneRule(timedelta(days=30), NOW, "roi-worker")
    assert rule.cutoff == NOW - timedelta(days=30)
    assert rule.keep_reason(activity("roi-backfill-a", 31)) is None
    assert rule.keep_reason(activity("roi-backfill-a", 30)) is None  # exactly at the cutoff
    assert rule.keep_reason(activity("roi-backfill-b", 2)) == "active 2 days ago"
    assert rule.keep_reason(activity("roi-worker", 400)) == (
        "the live group (ROI_GROUP_ID): name it with --group to prune it"
    )
    named = PruneRule(timedelta(days=30), NOW, "roi-worker", "roi-worker")
    assert named.keep_reason(activity("roi-worker", 400)) is None
    assert named.keep_reason(activity("roi-worker", 1)) == "active 1 day ago"


def test_a_group_is_prunable_while_pruning_would_change_something() -> None:
    """A pruned group whose kept rows still account for stored executions is left out; once
    retention has deleted them (rows to delete), or if it has rows not yet marked, it is in."""
    assert activity("g", 40).prunable
    assert not activity("g", 40, partitions=0, ledger_deleted=0, ledger_kept=3).prunable
    assert activity("g", 40, partitions=0, ledger_deleted=1, ledger_kept=2).prunable
    assert activity("g", 40, partitions=0, ledger_deleted=0, ledger_unarchived=2).prunable


def test_the_prune_plan_lists_each_group_with_its_rows_and_fate() -> None:
    """One row per group with its last activity, rows, executions and action; the totals count
    only the groups that go."""
    old = activity("roi-backfill-old", 40, ledger_deleted=10, ledger_kept=2, executions=1500)
    recent = activity("roi-backfill-new", 0.5, ledger_deleted=6)
    plan = PrunePlan(
        PruneRule(timedelta(days=30), NOW, "roi-worker"),
        (PruneCandidate(old), PruneCandidate(recent, "active 12 hours ago")),
    )
    assert render_prune_plan(plan).splitlines() == [
        "plan: prune the groups with no row written for 30 days "
        "(last activity before 2026-10-21 12:00:00Z)",
        "group             last activity         offsets  ledger rows  executions  action",
        "roi-backfill-old  2026-10-11 12:00:00Z        3           12       1,500  prune",
        "roi-backfill-new  2026-11-20 00:00:00Z        3            6           0  "
        "keep: active 12 hours ago",
        "1 of 2 groups to prune: 3 stored offsets and 10 ledger rows to delete; 2 ledger rows "
        "stay, marked pruned, for the 1,500 stored executions they inserted (reconcile still "
        "matches them)",
    ]
    kept = PrunePlan(plan.rule, (PruneCandidate(recent, "active 12 hours ago"),))
    assert render_prune_plan(kept).splitlines()[-1] == "nothing to prune: every group listed stays"
    empty = PrunePlan(PruneRule(timedelta(hours=12), NOW, "roi-worker", "nobody"), ())
    assert render_prune_plan(empty).splitlines() == [
        "plan: prune group nobody with no row written for 12 hours "
        "(last activity before 2026-11-20 00:00:00Z)",
        "nothing to prune: group nobody has no rows to delete",
    ]


def test_naming_the_live_group_warns_that_its_workers_start_over() -> None:
    plan = PrunePlan(
        PruneRule(timedelta(days=30), NOW, "roi-worker", "roi-worker"),
        (PruneCandidate(activity("roi-worker", 40)),),
    )
    assert render_prune_plan(plan).splitlines()[-1] == (
        "note: roi-worker is ROI_GROUP_ID: its workers will start again from the first offsets "
        "(events already stored are duplicates)"
    )


def test_prune_outcomes_say_what_went_and_what_stayed_since_the_plan() -> None:
    outcomes = [
        PruneOutcome("a", Pruned(3, 10, 2)),
        PruneOutcome("b", None, "since the plan: active 1 minute ago"),
        PruneOutcome("c", Pruned(1, 4, 0)),
    ]
    assert render_prune_outcomes(outcomes).splitlines() == [
        "pruned: group a: 3 stored offsets and 10 ledger rows deleted, 2 ledger rows kept "
        "(marked pruned)",
        "kept: group b: since the plan: active 1 minute ago",
        "pruned: group c: 1 stored offsets and 4 ledger rows deleted",
        "applied: 2 groups pruned",
    ]


def test_a_group_that_failed_is_reported_beside_those_pruned_before_it() -> None:
    outcomes = [
        PruneOutcome("a", Pruned(3, 10, 0)),
        PruneOutcome("b", None, failed="PostgreSQL is unavailable"),
    ]
    assert render_prune_outcomes(outcomes).splitlines() == [
        "pruned: group a: 3 stored offsets and 10 ledger rows deleted",
        "failed: group b: PostgreSQL is unavailable (nothing of it changed)",
        "applied: 1 group pruned",
    ]
