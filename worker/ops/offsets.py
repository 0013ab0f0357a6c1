"""Operator tools for a group's offsets: where each partition stands, and resetting it.

PostgreSQL's consumer_offsets is the truth (the worker seeks there on assignment); Kafka's
committed offsets only follow it, for lag tooling. So a reset writes PostgreSQL first, in one
transaction, and then commits the same offsets to Kafka. It is the one way to move stored
offsets backwards (the write stage only ever moves them forward), and it refuses while the
group has live members: a running worker would keep its own position and overwrite the reset
with its next batch.

Every function here may block on Kafka (at most about KAFKA_TIMEOUT_MS per request) and on
PostgreSQL. Kafka failures become BrokerUnavailableError, a missing topic ConfigurationError,
a group with members GroupActiveError.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from worker.consume.write import BatchWriter
from worker.db.connect import connect
from worker.db.ledger import RESET, Stored, insert_rows, move_rows
from worker.errors import BrokerUnavailableError, FatalError
from worker.kafka.topic_range import (
    KAFKA_TIMEOUT_MS,
    bounds,
    offsets_at,
    open_consumer,
    partitions_of,
)
from worker.settings import Settings

CLIENT_ID: Final = "roi-worker-offsets"
# States of a group nobody is in (classic protocol); any other state means members or a
# rebalance in progress.
IDLE_STATES: Final = frozenset({"Empty", "Dead"})
# A reset waits this long at most for rows a lingering worker transaction holds.
RESET_SESSION: Final = {"options": "-c lock_timeout=10s -c statement_timeout=60s"}

_LOCK_STORED: Final = """
SELECT partition, next_offset, ledger_offset FROM consumer_offsets
WHERE consumer_group = %s AND topic = %s
ORDER BY partition
FOR UPDATE
"""

# Unlike the write stage's upsert (only forward), this sets the offsets as given; the offset
# ledger records the move (a `reset` row, worker/db/ledger.py) in the same transaction.
_RESET: Final = """
INSERT INTO consumer_offsets AS o (consumer_group, topic, partition, next_offset, ledger_offset)
SELECT %s, %s, partition, next_offset, next_offset
FROM unnest(%s::integer[], %s::bigint[]) AS u(partition, next_offset)
ORDER BY partition
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
SET next_offset = excluded.next_offset, ledger_offset = excluded.next_offset, updated_at = now()
"""


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
        committed = _committed(admin, group, topic, sorted(ranges))
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
    partitions = [p.partition for p in plan.partitions]
    offsets = [p.new for p in plan.partitions]
    url = settings.database_url.get_secret_value()
    with _admin(settings) as admin:
        with connect(url, autocommit=True, **RESET_SESSION) as conn, conn.transaction():
            rows = conn.execute(_LOCK_STORED, (plan.group, plan.topic)).fetchall()
            positions = {p: Stored(offset, ledger_offset) for p, offset, ledger_offset in rows}
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
            conn.execute(_RESET, (plan.group, plan.topic, partitions, offsets))
        _commit_to_kafka(admin, plan)


def _refuse_if_live(members: GroupMembers) -> None:
    if members.live:
        raise GroupActiveError(
            f"group {members.group} has {members.describe()}: stop all of its workers, wait "
            "until `roi-worker offsets show` reports no live members, then reset; nothing changed"
        )


def refuse_if_live(settings: Settings, group: str) -> GroupMembers:
    """The group's members; raises GroupActiveError if it has any."""
    members = live_members(settings, group)
    _refuse_if_live(members)
    return members


def _or_start(offset: int | None) -> str:
    return "start" if offset is None else str(offset)


def _stored(settings: Settings, group: str, topic: str) -> dict[int, int]:
    with connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        stored = BatchWriter(conn, group).load_offsets([topic])
    return {partition: offset for (_, partition), offset in stored.items()}


def _committed(admin: Any, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    tps = [TopicPartition(topic, p) for p in partitions]
    found = admin.list_group_offsets({group: tps}).get(group, {})
    return {
        tp.partition: meta.offset
        for tp, meta in found.items()
        if tp.topic == topic and meta.offset >= 0  # -1: nothing committed
    }


def _members(admin: Any, group: str) -> GroupMembers:
    described = admin.describe_groups([group]).get(group)
    if described is None:
        raise BrokerUnavailableError(f"Kafka did not describe group {group}")
    if described.get("error"):
        raise BrokerUnavailableError(f"cannot describe group {group}: {described['error']}")
    return GroupMembers(
        group, str(described.get("group_state") or "Unknown"), len(described.get("members") or ())
    )


def _commit_to_kafka(admin: Any, plan: ResetPlan) -> None:
    offsets = {
        TopicPartition(plan.topic, p.partition): OffsetAndMetadata(p.new, "", -1)
        for p in plan.partitions
    }
    errors = admin.alter_group_offsets(plan.group, offsets)
    failed = sorted(
        f"{tp.partition} ({error.__name__})"
        for tp, error in errors.items()
        if error is not None and error.errno != 0
    )
    if failed:
        raise BrokerUnavailableError(
            "the stored offsets are reset in PostgreSQL, which decides where workers resume, "
            f"but Kafka refused the committed offsets of partition {', '.join(failed)}: if a "
            "worker joined meanwhile it may have resumed from the old offsets (stop it and reset "
            "again); otherwise the workers commit the new ones when they start"
        )


@contextmanager
def _admin(settings: Settings) -> Iterator[Any]:
    try:
        admin = KafkaAdminClient(
            **{**settings.kafka_config(), "client_id": CLIENT_ID},
            request_timeout_ms=KAFKA_TIMEOUT_MS,
        )
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc
    try:
        yield admin
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka: {type(exc).__name__}: {exc}") from exc
    finally:
        admin.close()


@contextmanager
def _consumer(settings: Settings) -> Iterator[KafkaConsumer]:
    consumer = open_consumer(settings, CLIENT_ID)
    try:
        yield consumer
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka: {type(exc).__name__}: {exc}") from exc
    finally:
        consumer.close()
