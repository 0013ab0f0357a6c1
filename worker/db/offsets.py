"""consumer_offsets, where each group resumes each partition: the one module that reads or
writes it.

The table, not Kafka, decides what has been stored (migrations/0001_initial_schema.sql): a
batch moves its partitions' rows forward in the same transaction as its events and its offset
ledger rows (worker/db/ledger.py). Who may do what:
- the write stage (`save_forward`, in the batch's transaction): forward only;
- a replay's first batch (`save_forward` with `starts`) and `offsets reset` (`lock`, then
  `move`): backwards too, each move recorded in the ledger in the same transaction;
- `offsets prune` (`prune_group`): deletes a stale group's rows;
- readers: a worker seeking on assignment and the tools that wait for it (`load`), reconcile
  (`load_all`), prune's plan (`activity`).
Kafka's committed offsets only follow these rows, for lag tools.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

import psycopg

from ..types import Partition
from . import connect as db
from . import ledger
from .ledger import LEDGER_MIGRATION, LedgerRow, Stored

Key = tuple[str, str, int]  # group, topic, partition

_LOAD: Final = """
SELECT topic, partition, next_offset, updated_at FROM consumer_offsets
WHERE consumer_group = %s AND topic = ANY(%s)
"""

_LOAD_ALL: Final = """
SELECT consumer_group, topic, partition, next_offset, ledger_offset FROM consumer_offsets
WHERE (%(group)s::text IS NULL OR consumer_group = %(group)s)
  AND (%(topic)s::text IS NULL OR topic = %(topic)s)
"""

_LOCK: Final = """
SELECT o.topic, o.partition, o.next_offset, o.ledger_offset
FROM consumer_offsets o
JOIN unnest(%s::text[], %s::integer[]) AS u(topic, partition)
    ON o.topic = u.topic AND o.partition = u.partition
WHERE o.consumer_group = %s
ORDER BY o.topic, o.partition
FOR UPDATE OF o
"""

_LOCK_GROUP: Final = """
SELECT topic, partition, next_offset, ledger_offset FROM consumer_offsets
WHERE consumer_group = %s
ORDER BY topic, partition
FOR UPDATE
"""

_CREATE: Final = """
INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset, ledger_offset)
SELECT %s, topic, partition, start, start
FROM unnest(%s::text[], %s::integer[], %s::bigint[]) AS u(topic, partition, start)
ORDER BY topic, partition
ON CONFLICT (consumer_group, topic, partition) DO NOTHING
RETURNING topic, partition
"""

# Sets the offsets as given, backwards too: a replay starting its group elsewhere than it stood,
# `offsets reset`. The caller records the move in the ledger in the same transaction.
_MOVE: Final = """
INSERT INTO consumer_offsets AS o (consumer_group, topic, partition, next_offset, ledger_offset)
SELECT %s, topic, partition, next_offset, next_offset
FROM unnest(%s::text[], %s::integer[], %s::bigint[]) AS u(topic, partition, next_offset)
ORDER BY topic, partition
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
SET next_offset = excluded.next_offset, ledger_offset = excluded.next_offset, updated_at = now()
"""

# Offsets only move forward: a worker that lost its partition to a rebalance but still
# finishes a batch cannot rewind the new owner (its events are duplicates anyway). The rows
# locked by `lock` hold the offsets the ledger's plan started from, so the ledger now ends at
# the new next offset. One statement with the ledger's rows.
_SAVE: Final = f"""
WITH saved AS (
    INSERT INTO consumer_offsets AS o (consumer_group, topic, partition, next_offset,
                                       ledger_offset)
    SELECT %(group)s, topic, partition, next_offset, next_offset
    FROM unnest(%(topics)s::text[], %(partitions)s::integer[], %(offsets)s::bigint[])
        AS u(topic, partition, next_offset)
    ORDER BY topic, partition
    ON CONFLICT (consumer_group, topic, partition) DO UPDATE
    SET next_offset = GREATEST(o.next_offset, excluded.next_offset),
        ledger_offset = GREATEST(o.next_offset, excluded.next_offset),
        updated_at = now()
)
{ledger.INSERT_ROWS}
"""

# The ledger rows a pruned group leaves (migrations/0007_offset_ledger_pruned.sql): batch rows
# that inserted executions still stored, and unaudited ranges written since the ledger exists
# (stored rows of an older release's writer may lie in them). Reconcile matches the stored
# executions against both; without them, those executions would be stored rows no batch
# inserted. The other rows (start, reset, replay, batches whose inserted rows are all gone or
# that inserted none, the unaudited ranges of migration 0006, before any row was checked) go.
_KEEP: Final = f"""(
    (l.kind = '{ledger.BATCH}' AND l.inserted > l.deleted_by_retention)
    OR (l.kind = '{ledger.UNAUDITED}' AND l.written_at > (
        SELECT coalesce(max(applied_at), '-infinity') FROM schema_migrations
        WHERE name = '{LEDGER_MIGRATION}'))
)"""

# Per group: its consumer_offsets rows, its ledger rows (those prune deletes, those it keeps),
# the executions still stored that its batches inserted, and when either table last changed
# for it. Reads the whole ledger: an operator's command, like reconcile.
_ACTIVITY: Final = f"""
WITH offsets AS (
    SELECT consumer_group, count(*) AS partitions, max(updated_at) AS changed
    FROM consumer_offsets
    WHERE %(group)s::text IS NULL OR consumer_group = %(group)s
    GROUP BY consumer_group
), ledger AS (
    SELECT consumer_group, max(written_at) AS changed,
           count(*) FILTER (WHERE NOT keep) AS doomed,
           count(*) FILTER (WHERE keep) AS kept,
           count(*) FILTER (WHERE keep AND pruned_at IS NULL) AS unarchived,
           coalesce(sum(inserted - deleted_by_retention)
                    FILTER (WHERE kind = '{ledger.BATCH}'), 0) AS executions
    FROM (SELECT l.*, {_KEEP} AS keep FROM offset_ledger l
          WHERE %(group)s::text IS NULL OR l.consumer_group = %(group)s) l
    GROUP BY consumer_group
)
SELECT consumer_group, coalesce(o.partitions, 0), coalesce(l.doomed, 0), coalesce(l.kept, 0),
       coalesce(l.unarchived, 0), coalesce(l.executions, 0), GREATEST(o.changed, l.changed)
FROM offsets o FULL JOIN ledger l USING (consumer_group)
ORDER BY 7, 1
"""

# Run under the group's locked rows (lock_group). An unaudited gap of a row (an older writer
# moved next_offset past ledger_offset) becomes a kept unaudited ledger row, as the group's
# next batch would have recorded it.
_PRUNE: Final = f"""
WITH gone AS (
    DELETE FROM consumer_offsets WHERE consumer_group = %(group)s
    RETURNING topic, partition, next_offset, ledger_offset
), caught_up AS (
    INSERT INTO offset_ledger (consumer_group, topic, partition, kind, first_offset,
                               next_offset, pruned_at)
    SELECT %(group)s, topic, partition, '{ledger.UNAUDITED}', ledger_offset, next_offset, now()
    FROM gone WHERE ledger_offset < next_offset
    ORDER BY topic, partition
    RETURNING 1
), dropped AS (
    DELETE FROM offset_ledger l WHERE l.consumer_group = %(group)s AND NOT {_KEEP}
    RETURNING 1
), archived AS (
    UPDATE offset_ledger l SET pruned_at = now()
    WHERE l.consumer_group = %(group)s AND l.pruned_at IS NULL AND {_KEEP}
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM dropped),
       (SELECT count(*) FROM archived) + (SELECT count(*) FROM caught_up)
"""


class Saved(NamedTuple):
    """A partition's stored next offset, and when a batch last saved it (by any worker)."""

    next_offset: int
    saved_at: datetime


class GroupActivity(NamedTuple):
    """A group's rows, and what pruning it would delete and keep.

    `partitions`: its consumer_offsets rows; `ledger_deleted` and `ledger_kept`: its offset
    ledger rows that prune deletes and keeps (`ledger_unarchived` of these not marked pruned
    yet); `executions`: stored executions its batches inserted; `last_activity`: when a row of
    either table was last written for it.
    """

    group: str
    partitions: int
    ledger_deleted: int
    ledger_kept: int
    ledger_unarchived: int
    executions: int
    last_activity: datetime

    @property
    def prunable(self) -> bool:
        """Whether pruning would change anything (a pruned group's kept rows stay until
        retention deletes their executions)."""
        return bool(self.partitions or self.ledger_deleted or self.ledger_unarchived)


class Pruned(NamedTuple):
    """What `prune_group` did: consumer_offsets rows deleted, ledger rows deleted and kept."""

    partitions: int
    ledger_deleted: int
    ledger_kept: int


def load(
    conn: psycopg.Connection[Any], group: str, topics: Sequence[str]
) -> dict[Partition, Saved]:
    """The stored next offset of every partition of `topics` for `group`, and when it was saved.
    Raises what worker.db.connect.errors maps psycopg's errors to (DatabaseUnavailableError
    when PostgreSQL cannot be reached)."""
    with db.errors(privileges="the role needs SELECT on consumer_offsets"):
        rows = conn.execute(_LOAD, (group, list(topics))).fetchall()
    return {(topic, partition): Saved(offset, saved) for topic, partition, offset, saved in rows}


def load_all(
    conn: psycopg.Connection[Any], *, group: str | None = None, topic: str | None = None
) -> dict[Key, Stored]:
    """Every row of `group` (every group if None) on `topic` (every topic if None), with where
    the ledger's record of it ends. Read in the caller's transaction (reconcile's snapshot)."""
    rows = conn.execute(_LOAD_ALL, {"group": group, "topic": topic})
    return {(g, t, p): Stored(offset, ledger_offset) for g, t, p, offset, ledger_offset in rows}


def lock(
    conn: psycopg.Connection[Any], group: str, partitions: Sequence[Partition]
) -> dict[Partition, Stored]:
    """Locks the partitions' rows (those that exist) until the transaction ends, in key order,
    and reads their latest committed values."""
    topics, numbers = _columns(partitions)
    rows = conn.execute(_LOCK, (topics, numbers, group)).fetchall()
    return {(topic, partition): Stored(offset, ledger) for topic, partition, offset, ledger in rows}


def lock_group(conn: psycopg.Connection[Any], group: str) -> dict[Partition, Stored]:
    """Locks every row of `group` until the transaction ends, in key order: a batch of the
    group waits, and then finds them as the transaction left them."""
    rows = conn.execute(_LOCK_GROUP, (group,)).fetchall()
    return {(topic, partition): Stored(offset, ledger) for topic, partition, offset, ledger in rows}


def move(conn: psycopg.Connection[Any], group: str, offsets: Mapping[Partition, int]) -> None:
    """Sets the stored offsets to `offsets`, backwards too, creating missing rows. Only for a
    reset or a replay's start, with its ledger rows in the same transaction."""
    keys = sorted(offsets)
    topics, numbers = _columns(keys)
    conn.execute(_MOVE, (group, topics, numbers, [offsets[key] for key in keys]))


def save_forward(
    conn: psycopg.Connection[Any],
    group: str,
    next_offsets: Mapping[Partition, int],
    outcomes: Callable[[], ledger.Outcomes],
    *,
    starts: Mapping[Partition, int] | None = None,
) -> None:
    """Stores a batch's next offsets and its offset ledger rows, inside the caller's
    transaction (the batch's, with its events). `outcomes` gives, each time it is called, what
    became of the batch's messages (ledger.tally counts them); `starts`, where a replay began
    partitions it has not stored in this run. In order:

    1. lock the partitions' rows, and read where each range begins and where the ledger's
       record ends. A partition without a row gets one first, at `starts`, else at the
       batch's first message; a concurrent creator's row wins and is read instead;
    2. plan the ledger rows (ledger.plan), and move the partitions a replay starts elsewhere;
    3. save the next offsets (only forwards) and the ledger rows, in one statement.
    """
    if not next_offsets:
        return
    tallies = ledger.tally(outcomes())
    partitions = sorted(next_offsets)
    stored = lock(conn, group, partitions)
    missing = [key for key in partitions if key not in stored]
    created: set[Partition] = set()
    if missing:  # the partition's first batch for this group
        begin: dict[Partition, int] = {}
        for key in missing:
            counted = tallies.get(key)
            first = counted.first if counted is not None else next_offsets[key]
            begin[key] = (starts or {}).get(key, first)
        created = _create(conn, group, begin)
        stored.update(lock(conn, group, missing))
    plan = ledger.plan(
        next_offsets,
        stored,
        tallies,
        lambda bounds: ledger.tally(outcomes(), bounds),
        starts=starts,
        created=created,
    )
    if plan.moves:
        move(conn, group, plan.moves)
    _save(conn, group, next_offsets, plan.rows)


def activity(conn: psycopg.Connection[Any], group: str | None = None) -> list[GroupActivity]:
    """Every group with rows in consumer_offsets or the offset ledger (only `group`, if given),
    least recently active first."""
    return [GroupActivity(*row) for row in conn.execute(_ACTIVITY, {"group": group})]


def prune_group(conn: psycopg.Connection[Any], group: str) -> Pruned:
    """Deletes the group's consumer_offsets rows and the ledger rows reconcile no longer needs;
    marks the others pruned (reconcile walks them no more, but still matches the executions
    they inserted). Run inside a transaction that has locked the group's rows (`lock_group`)."""
    row = conn.execute(_PRUNE, {"group": group}).fetchone()
    return Pruned(*row) if row else Pruned(0, 0, 0)


def _create(
    conn: psycopg.Connection[Any], group: str, starts: Mapping[Partition, int]
) -> set[Partition]:
    """Creates the missing rows at `starts` (a concurrent creator's row, once it commits, is
    kept instead); returns the partitions it created."""
    keys = sorted(starts)
    topics, numbers = _columns(keys)
    rows = conn.execute(_CREATE, (group, topics, numbers, [starts[key] for key in keys]))
    return {(topic, partition) for topic, partition in rows.fetchall()}


def _save(
    conn: psycopg.Connection[Any],
    group: str,
    next_offsets: Mapping[Partition, int],
    rows: Sequence[LedgerRow],
) -> None:
    keys = sorted(next_offsets)
    topics, numbers = _columns(keys)
    parameters = ledger.row_parameters(group, rows)
    parameters.update(topics=topics, partitions=numbers, offsets=[next_offsets[k] for k in keys])
    conn.execute(_SAVE, parameters)


def _columns(keys: Sequence[Partition]) -> tuple[list[str], list[int]]:
    return [topic for topic, _ in keys], [partition for _, partition in keys]
