"""Operator tools for a group's offsets: where each partition stands, resetting it, and
pruning stale groups.

PostgreSQL's consumer_offsets is the truth (the worker seeks there on assignment); Kafka's
committed offsets only follow it, for lag tooling. So a reset writes PostgreSQL first, in one
transaction, and then commits the same offsets to Kafka. It is the one way to move stored
offsets backwards (the write stage only ever moves them forward), and it refuses while the
group has live members: a running worker would keep its own position and overwrite the reset
with its next batch.

Pruning deletes what stale groups left (backfills' above all): a group is stale when no row
of it in consumer_offsets or the offset ledger was written for longer than the horizon, it is
not ROI_GROUP_ID (unless named), and Kafka knows no member of it. Its consumer_offsets rows go
with the ledger rows that account for nothing still stored; the ledger rows that do (batches
whose inserted executions are still stored) stay, marked pruned, so `roi-worker reconcile`
still matches every stored execution and every other group's audit is unchanged
(worker/db/offsets.py, worker/ops/reconcile.py). A later prune deletes them once retention has
deleted their executions.

Every function here may block on Kafka (at most about KAFKA_TIMEOUT_MS per request) and on
PostgreSQL. Kafka failures become BrokerUnavailableError, a missing topic ConfigurationError,
a group with members GroupActiveError.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from ..db import offsets as stored_offsets
from ..db.connect import connect
from ..db.ledger import RESET, insert_rows, move_rows
from ..db.offsets import GroupActivity, Pruned
from ..errors import BrokerUnavailableError, FatalError, RoiWorkerError
from ..kafka.admin import GroupAdmin, open_admin
from ..kafka.topic_range import RangeConsumer, bounds, offsets_at, open_consumer, partitions_of
from ..settings import Settings

CLIENT_ID: Final = "roi-worker-offsets"
# States of a group nobody is in (classic protocol); any other state means members or a
# rebalance in progress.
IDLE_STATES: Final = frozenset({"Empty", "Dead"})
# A reset waits this long at most for rows a lingering worker transaction holds.
RESET_SESSION: Final = {"options": "-c lock_timeout=10s -c statement_timeout=60s"}


class GroupActiveError(FatalError):
    """The group has live members; stop its workers before resetting its offsets."""


class PlanOutdatedError(FatalError):
    """The stored offsets changed between planning a reset and executing it."""


@dataclass(frozen=True, slots=True)
class PartitionPosition:
    """Where one partition stands for a group.

    `stored`: next offset in PostgreSQL (None: no row, the worker starts at `first`);
    `committed`: the group's committed offset in Kafka (None: none); `first`: the first offset
    still in the topic; `end`: the offset the next message will get.
    """

    partition: int
    stored: int | None
    committed: int | None
    first: int
    end: int

    @property
    def lag(self) -> int:
        """Messages not stored yet: end - stored (no stored offset: end - first). Negative
        when the stored offset is beyond the end (the topic was recreated)."""
        return self.end - (self.first if self.stored is None else self.stored)


@dataclass(frozen=True, slots=True)
class GroupMembers:
    """A consumer group's state and member count, as the group coordinator reports them."""

    group: str
    state: str
    members: int

    @property
    def live(self) -> bool:
        """Whether anyone is (or is joining) in the group."""
        return self.members > 0 or self.state not in IDLE_STATES

    def describe(self) -> str:
        noun = "member" if self.members == 1 else "members"
        return f"{self.members} live {noun} (state {self.state})"


@dataclass(frozen=True, slots=True)
class ResetTarget:
    """Where a reset moves every partition: the earliest offset still stored (`moment` None),
    or the first offset whose timestamp is at or after `moment` (the end if there is none)."""

    moment: datetime | None = None

    def __post_init__(self) -> None:
        if self.moment is not None:
            check_moment(self.moment)

    def describe(self) -> str:
        if self.moment is None:
            return "the earliest offsets"
        return f"the first offsets at or after {self.moment.isoformat()}"


EARLIEST: Final = ResetTarget()


@dataclass(frozen=True, slots=True)
class PartitionReset:
    """One partition's stored offset now (None: no row) and after the reset."""

    partition: int
    current: int | None
    new: int
    first: int
    end: int

    @property
    def change(self) -> int:
        """new minus where the worker would resume now: negative re-reads, positive skips."""
        return self.new - (self.first if self.current is None else self.current)


@dataclass(frozen=True, slots=True)
class ResetPlan:
    """What `execute_reset` will write, per partition of `topic`, for `group`."""

    group: str
    topic: str
    target: ResetTarget
    partitions: tuple[PartitionReset, ...]

    @property
    def rereads(self) -> int:
        """Messages the group will read again (duplicates for whatever is already stored)."""
        return sum(-p.change for p in self.partitions if p.change < 0)

    @property
    def skips(self) -> int:
        """Messages after the stored offsets that the group will never read."""
        return sum(p.change for p in self.partitions if p.change > 0)


def check_moment(moment: datetime) -> datetime:
    """`moment` if a reset can use it; ValueError if it has no timezone or is before 1970
    (Kafka reads negative timestamps as 'latest' and 'earliest')."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no timezone offset")
    if moment.timestamp() < 0:
        raise ValueError(f"{moment.isoformat()} is before 1970-01-01T00:00:00Z")
    return moment


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date and time with a timezone offset (2026-11-20T00:00:00Z, ...+01:00).

    Raises ValueError, with a message an operator can act on, for anything else.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date and time, e.g. 2026-11-20T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(
            f"{text!r} has no timezone offset; add one, e.g. {moment.isoformat()}Z for UTC"
        )
    return check_moment(moment)


def positions(settings: Settings, group: str, topic: str) -> list[PartitionPosition]:
    """Every partition of `topic`: stored, committed, first and end offsets for `group`.

    The stored offsets are read before the topic's bounds, so a busy group shows lag >= 0.
    """
    with _consumer(settings) as consumer:
        partitions_of(consumer, topic)  # a missing topic fails before anything else
        stored = _stored(settings, group, topic)
        ranges = bounds(consumer, topic)
    with _admin(settings) as admin:
        committed = admin.committed(group, topic, sorted(ranges))
    return [
        PartitionPosition(p, stored.get(p), committed.get(p), first, end)
        for p, (first, end) in sorted(ranges.items())
    ]


def live_members(settings: Settings, group: str) -> GroupMembers:
    """The group's state and member count (a group that never existed is Dead, 0 members)."""
    with _admin(settings) as admin:
        return _members(admin, group)


def plan_reset(settings: Settings, group: str, topic: str, target: ResetTarget) -> ResetPlan:
    """The new stored offset of every partition of `topic`; changes nothing."""
    with _consumer(settings) as consumer:
        partitions_of(consumer, topic)
        stored = _stored(settings, group, topic)
        ranges = bounds(consumer, topic)
        if target.moment is None:
            new = {p: first for p, (first, _) in ranges.items()}
        else:
            ends = {p: end for p, (_, end) in ranges.items()}
            new = offsets_at(consumer, topic, target.moment, ends)
    return ResetPlan(
        group,
        topic,
        target,
        tuple(
            PartitionReset(p, stored.get(p), new[p], first, end)
            for p, (first, end) in sorted(ranges.items())
        ),
    )


def execute_reset(settings: Settings, plan: ResetPlan) -> None:
    """Applies `plan`, in this order:

    1. in one PostgreSQL transaction: lock the group's stored offsets of the topic; refuse
       (PlanOutdatedError) if they differ from the plan's; refuse (GroupActiveError) if the
       group has live members; record each move in the offset ledger (a `reset` row, so that
       `roi-worker reconcile` explains the gap or overlap it makes); write every partition's
       new offset (backwards too); commit;
    2. commit the same offsets to Kafka for the group, so that lag tools agree.

    If step 2 fails (BrokerUnavailableError) the reset stands: PostgreSQL decides where the
    workers resume, and they commit their offsets to Kafka when they start.
    """
    new = {(plan.topic, p.partition): p.new for p in plan.partitions}
    url = settings.database_url.get_secret_value()
    with _admin(settings) as admin:
        with connect(url, autocommit=True, **RESET_SESSION) as conn, conn.transaction():
            rows = stored_offsets.lock(conn, plan.group, sorted(new))
            positions = {p: position for (_, p), position in rows.items()}
            locked = {p: position.next_offset for p, position in positions.items()}
            moved = [
                f"{p.partition}: planned from {_or_start(p.current)}, "
                f"now {_or_start(locked.get(p.partition))}"
                for p in plan.partitions
                if locked.get(p.partition) != p.current
            ]
            if moved:
                raise PlanOutdatedError(
                    f"the stored offsets of group {plan.group} on {plan.topic} changed since "
                    f"the plan (partition {'; '.join(moved)}); nothing changed, run the reset "
                    "again"
                )
            _refuse_if_live(_members(admin, plan.group))
            moves = [(p.partition, positions.get(p.partition), p.new) for p in plan.partitions]
            insert_rows(conn, plan.group, move_rows(plan.topic, moves, RESET))
            stored_offsets.move(conn, plan.group, new)
        _commit_to_kafka(admin, plan)


def _refuse_if_live(members: GroupMembers) -> None:
    if members.live:
        raise GroupActiveError(
            f"group {members.group} has {members.describe()}: stop all of its workers, wait "
            "until `roi-worker offsets show` reports no live members, then run this again; "
            "nothing changed"
        )


def refuse_if_live(settings: Settings, group: str) -> GroupMembers:
    """The group's members; raises GroupActiveError if it has any."""
    members = live_members(settings, group)
    _refuse_if_live(members)
    return members


# --------------------------------------------------------------------------- prune

MAX_AGE_DAYS: Final = 36_500
_AGE_UNITS: Final = {"d": timedelta(days=1), "h": timedelta(hours=1)}
_AGE_NAMES: Final = ((86_400, "day"), (3_600, "hour"), (60, "minute"))


def parse_age(text: str) -> timedelta:
    """`30d` or `12h`: a positive whole number of days or hours, at most MAX_AGE_DAYS days.

    Raises ValueError, with a message an operator can act on, for anything else.
    """
    value, unit = text.strip()[:-1], text.strip()[-1:]
    if not value.isdecimal() or not value.isascii() or unit not in _AGE_UNITS or int(value) < 1:
        raise ValueError(
            f"{text!r} is not an age: a whole number of days or hours, e.g. 30d or 12h"
        )
    if int(value) > MAX_AGE_DAYS * (timedelta(days=1) // _AGE_UNITS[unit]):
        raise ValueError(f"{text!r} is more than {MAX_AGE_DAYS}d")
    return int(value) * _AGE_UNITS[unit]


def describe_age(age: timedelta) -> str:
    """`30 days`, `1 hour`, `12 minutes`: whole units of the largest that fits (at least 1
    minute)."""
    seconds = max(int(age.total_seconds()), 60)
    size, unit = next((size, unit) for size, unit in _AGE_NAMES if seconds >= size)
    count = seconds // size
    return f"{count} {unit}{'s' if count > 1 else ''}"


@dataclass(frozen=True, slots=True)
class PruneRule:
    """Which groups `offsets prune` deletes: those with no row written in the `older_than`
    before `now`, except `live_group` (ROI_GROUP_ID) unless it is the one `named`."""

    older_than: timedelta
    now: datetime
    live_group: str
    named: str | None = None

    @property
    def cutoff(self) -> datetime:
        """Groups last active before this are stale."""
        return self.now - self.older_than

    def keep_reason(self, activity: GroupActivity) -> str | None:
        """Why the database says the group stays; None: it goes unless Kafka has a member."""
        if activity.group == self.live_group and self.named != self.live_group:
            return "the live group (ROI_GROUP_ID): name it with --group to prune it"
        if activity.last_activity > self.cutoff:
            return f"active {describe_age(self.now - activity.last_activity)} ago"
        return None


@dataclass(frozen=True, slots=True)
class PruneCandidate:
    """A group with rows to prune, and why it stays (`kept`; None: it goes)."""

    activity: GroupActivity
    kept: str | None = None


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """Every group with something to prune (only `rule.named`, if given), least recently
    active first, and what becomes of it."""

    rule: PruneRule
    groups: tuple[PruneCandidate, ...]

    @property
    def doomed(self) -> list[GroupActivity]:
        return [c.activity for c in self.groups if c.kept is None]


@dataclass(frozen=True, slots=True)
class PruneOutcome:
    """What `execute_prune` did with a planned group: `pruned`, why it was `kept` after all, or
    why pruning it `failed` (then nothing of it changed: its transaction rolled back)."""

    group: str
    pruned: Pruned | None
    kept: str | None = None
    failed: str | None = None


def plan_prune(settings: Settings, rule: PruneRule) -> PrunePlan:
    """Which groups `execute_prune` deletes and which stay, and why; changes nothing. Asks
    Kafka only about the groups the database finds stale."""
    with connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        found = [a for a in stored_offsets.activity(conn, rule.named) if a.prunable]
    reasons = {a.group: rule.keep_reason(a) for a in found}
    if any(reason is None for reason in reasons.values()):
        with _admin(settings) as admin:
            for name, reason in reasons.items():
                if reason is None:
                    members = _members(admin, name)
                    reasons[name] = members.describe() if members.live else None
    return PrunePlan(rule, tuple(PruneCandidate(a, reasons[a.group]) for a in found))


def execute_prune(settings: Settings, plan: PrunePlan) -> list[PruneOutcome]:
    """Prunes each group the plan lets go, one PostgreSQL transaction each:

    1. lock the group's consumer_offsets rows (a batch of the group waits);
    2. read its rows again: keep it if one was written since the plan's horizon;
    3. keep it if Kafka now knows a member of it;
    4. delete its consumer_offsets rows and the ledger rows reconcile no longer needs, mark the
       others pruned (worker/db/offsets.py, prune_group); commit.

    A group kept at step 2 or 3 is reported with the reason, and nothing of it changes. A group
    whose steps fail is reported with the error and the others are still tried, so that the
    operator learns of every group already pruned.
    """
    outcomes: list[PruneOutcome] = []
    doomed = plan.doomed
    if not doomed:
        return outcomes
    url = settings.database_url.get_secret_value()
    with _admin(settings) as admin, connect(url, autocommit=True, **RESET_SESSION) as conn:
        for planned in doomed:
            try:
                outcomes.append(_prune_one(conn, admin, plan.rule, planned.group))
            except RoiWorkerError as exc:
                outcomes.append(PruneOutcome(planned.group, None, failed=str(exc)))
    return outcomes


def _prune_one(
    conn: psycopg.Connection[Any], admin: GroupAdmin, rule: PruneRule, group: str
) -> PruneOutcome:
    """Steps 1 to 4 of execute_prune for one group, in one transaction."""
    with conn.transaction():
        stored_offsets.lock_group(conn, group)
        current = stored_offsets.activity(conn, group)
        reason = rule.keep_reason(current[0]) if current else None
        if reason is None:
            members = _members(admin, group)
            reason = members.describe() if members.live else None
        if reason is not None:
            return PruneOutcome(group, None, f"since the plan: {reason}")
        return PruneOutcome(group, stored_offsets.prune_group(conn, group))


def _or_start(offset: int | None) -> str:
    return "start" if offset is None else str(offset)


def _stored(settings: Settings, group: str, topic: str) -> dict[int, int]:
    with connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        stored = stored_offsets.load(conn, group, [topic])
    return {partition: saved.next_offset for (_, partition), saved in stored.items()}


def _members(admin: GroupAdmin, group: str) -> GroupMembers:
    state, members = admin.state(group)
    return GroupMembers(group, state, members)


def _commit_to_kafka(admin: GroupAdmin, plan: ResetPlan) -> None:
    refused = admin.commit(plan.group, plan.topic, {p.partition: p.new for p in plan.partitions})
    failed = sorted(f"{partition} ({error})" for partition, error in refused.items())
    if failed:
        raise BrokerUnavailableError(
            "the stored offsets are reset in PostgreSQL, which decides where workers resume, "
            f"but Kafka refused the committed offsets of partition {', '.join(failed)}: if a "
            "worker joined meanwhile it may have resumed from the old offsets (stop it and reset "
            "again); otherwise the workers commit the new ones when they start"
        )


def _admin(settings: Settings) -> AbstractContextManager[GroupAdmin]:
    return open_admin(settings, CLIENT_ID)


def _consumer(settings: Settings) -> RangeConsumer:
    return open_consumer(settings, CLIENT_ID)
