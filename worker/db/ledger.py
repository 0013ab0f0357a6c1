"""The offset ledger (migrations/0006_offset_ledger.sql): every offset a group stores is
accounted for.

A batch's transaction, besides its events, writes for every partition in it
(worker/db/offsets.py, `save_forward`, which owns the consumer_offsets statements):
1. lock the partition's consumer_offsets row and read the stored next offset, where the
   batch's range begins, and `ledger_offset`, where the ledger's record ends. A partition
   without a row gets one first, at the offset the reader started from, or at the batch's
   first message; a concurrent creator's row wins and is read instead;
2. `plan` the ledger rows: a `start` row where the group begins a partition; an `unaudited`
   row (forwards) or a `reset` row (backwards) if a writer that keeps no ledger moved the
   stored offset since; a `replay` row if a replay starts its group elsewhere than it stood;
   then the `batch` row [stored, next) with what became of each message in it (`tally`),
   `skipped` being the offsets the broker never delivered;
3. save the next offsets (only forwards) and those rows (INSERT_ROWS), in one statement.

Offsets only move forward: a worker that lost its partition but still finishes a batch reads,
under the lock, the offset the new owner stored, and accounts only for the messages from there
on (none if the new owner is ahead), so the two ranges never overlap.

`offsets reset` and `replay` record the moves they make with `move_rows` and `insert_rows`.
`offsets prune` deletes a stale group's rows, except those reconcile still needs (marked
`pruned_at`, migrations/0007_offset_ledger_pruned.sql; worker/ops/offsets.py says which).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

import psycopg

from ..errors import FatalError
from ..types import Partition

LEDGER_MIGRATION: Final = "0006_offset_ledger.sql"  # reconcile checks rows stored since
BATCH: Final = "batch"
START: Final = "start"  # where the group began the partition
UNAUDITED: Final = "unaudited"
RESET: Final = "reset"
REPLAY: Final = "replay"
JUMPS: Final = frozenset({START, RESET, REPLAY})  # rows that set the position, ranges none

# What became of a message, in the order of the ledger's count columns.
OUTCOMES: Final = ("inserted", "duplicates", "conflicts", "refused", "expired", "dead_lettered")
COUNTS: Final = (*OUTCOMES, "skipped")

_COUNT_COLUMNS: Final = ", ".join(COUNTS)
# Rows in list order (WITH ORDINALITY): their ids give the order reconcile reads them in.
INSERT_ROWS: Final = f"""
INSERT INTO offset_ledger (consumer_group, topic, partition, kind, first_offset, next_offset,
                           {_COUNT_COLUMNS}, batches)
SELECT %(group)s, topic, partition, kind, first_offset, next_offset, {_COUNT_COLUMNS},
       CASE WHEN kind = '{BATCH}' THEN 1 ELSE 0 END
FROM unnest(%(row_topics)s::text[], %(row_partitions)s::integer[], %(kinds)s::text[],
            %(firsts)s::bigint[], %(nexts)s::bigint[], %(inserted)s::bigint[],
            %(duplicates)s::bigint[], %(conflicts)s::bigint[], %(refused)s::bigint[],
            %(expired)s::bigint[], %(dead_lettered)s::bigint[], %(skipped)s::bigint[])
    WITH ORDINALITY AS r(topic, partition, kind, first_offset, next_offset, {_COUNT_COLUMNS}, n)
ORDER BY n
"""


class Position(Protocol):
    """Where a message came from: worker.consume.write.Source, worker.consume.deadletter.Message."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class Stored(NamedTuple):
    """A partition's consumer_offsets row: where the group resumes, and where the ledger's
    record of it ends (the same, unless a writer that keeps no ledger moved the first)."""

    next_offset: int
    ledger_offset: int


@dataclass(slots=True)
class Tally:
    """What became of a partition's messages in a batch, and their lowest and highest offset."""

    first: int
    last: int
    counts: list[int] = field(default_factory=lambda: [0] * len(OUTCOMES))


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One row of offset_ledger, as written (the counts in COUNTS order)."""

    kind: str
    topic: str
    partition: int
    first_offset: int
    next_offset: int
    counts: tuple[int, ...] = (0,) * len(COUNTS)

    @property
    def size(self) -> int:
        return self.next_offset - self.first_offset


@dataclass(slots=True)
class Plan:
    """The ledger rows of a batch, and the partitions a replay moves before it."""

    rows: list[LedgerRow] = field(default_factory=list)
    moves: dict[Partition, int] = field(default_factory=dict)


# (outcome index in OUTCOMES, the positions of the messages with that outcome)
Outcomes = Iterable[tuple[int, Iterable[Position]]]


def tally(
    outcomes: Outcomes, bounds: Mapping[Partition, tuple[int, int]] | None = None
) -> dict[Partition, Tally]:
    """Counts each partition's messages by outcome. With `bounds`, only the offsets in
    [low, high) of their partition count (the others are in another batch's range)."""
    tallies: dict[Partition, Tally] = {}
    for index, positions in outcomes:
        for position in positions:
            key = (position.topic, position.partition)
            offset = position.offset
            if bounds is not None:
                low, high = bounds.get(key, (0, 0))
                if not low <= offset < high:
                    continue
            found = tallies.get(key)
            if found is None:
                found = tallies[key] = Tally(offset, offset)
            elif offset < found.first:
                found.first = offset
            elif offset > found.last:
                found.last = offset
            found.counts[index] += 1
    return tallies


def catch_up(topic: str, partition: int, stored: Stored) -> list[LedgerRow]:
    """The rows that account for a move of the stored offset by a writer that keeps no
    ledger: unaudited offsets (forwards) or a reset (backwards)."""
    if stored.ledger_offset < stored.next_offset:
        return [LedgerRow(UNAUDITED, topic, partition, stored.ledger_offset, stored.next_offset)]
    if stored.ledger_offset > stored.next_offset:
        return [LedgerRow(RESET, topic, partition, stored.ledger_offset, stored.next_offset)]
    return []


def plan(
    next_offsets: Mapping[Partition, int],
    stored: Mapping[Partition, Stored],
    tallies: Mapping[Partition, Tally],
    recount: Callable[[Mapping[Partition, tuple[int, int]]], Mapping[Partition, Tally]],
    *,
    starts: Mapping[Partition, int] | None = None,
    created: Collection[Partition] = (),
) -> Plan:
    """The ledger rows of a batch that read up to `next_offsets`, its partitions' `stored`
    positions read under their locks, and its messages `tallies`. `starts`: where a replay
    began reading partitions it had not stored in this run. `created`: the partitions whose
    consumer_offsets row this batch created (their ledger begins with a start row, as does
    one whose row another writer made at 0). `recount` tallies again within bounds, for a
    batch that read messages outside its range (a worker that lost its partition). Raises
    FatalError if the messages outnumber the range (two messages at one offset)."""
    result = Plan()
    overlapping: dict[Partition, tuple[int, int]] = {}
    ranges: list[tuple[Partition, int, int]] = []
    for key in sorted(next_offsets):
        topic, partition = key
        position = stored[key]
        if key in created or position == (0, 0):
            result.rows.append(LedgerRow(START, topic, partition, *position))
        result.rows += catch_up(topic, partition, position)
        previous = position.next_offset
        start = (starts or {}).get(key)
        if start is not None and start != previous:
            result.rows.append(LedgerRow(REPLAY, topic, partition, previous, start))
            result.moves[key] = previous = start
        end = next_offsets[key]
        if end <= previous:
            continue  # stored by another writer meanwhile: nothing of it is new
        ranges.append((key, previous, end))
        counted = tallies.get(key)
        if counted is not None and (counted.first < previous or counted.last >= end):
            overlapping[key] = (previous, end)
    recounted = recount(overlapping) if overlapping else {}
    for key, first, end in ranges:
        counted = recounted.get(key) if key in overlapping else tallies.get(key)
        counts = list(counted.counts) if counted is not None else [0] * len(OUTCOMES)
        skipped = end - first - sum(counts)
        if skipped < 0:
            raise FatalError(
                f"the offset ledger of {key[0]}/{key[1]} does not add up: {sum(counts)} "
                f"messages in offsets {first} to {end - 1} (a message counted twice?); nothing "
                "of the batch was stored"
            )
        result.rows.append(LedgerRow(BATCH, key[0], key[1], first, end, (*counts, skipped)))
    # Stable: each partition's catch-up and replay rows stay before its batch row.
    result.rows.sort(key=lambda row: (row.topic, row.partition))
    return result


def move_rows(
    topic: str, moves: Sequence[tuple[int, Stored | None, int]], kind: str
) -> list[LedgerRow]:
    """The rows of an operator's move (`kind` RESET or REPLAY) of each (partition, stored
    position or None, new offset): a catch-up if needed, then the jump, unless it stays put."""
    rows: list[LedgerRow] = []
    for partition, stored, new in moves:
        if stored is None:
            rows.append(LedgerRow(kind, topic, partition, new, new))  # the chain starts there
            continue
        rows += catch_up(topic, partition, stored)
        if new != stored.next_offset:
            rows.append(LedgerRow(kind, topic, partition, stored.next_offset, new))
    return rows


def row_parameters(group: str, rows: Sequence[LedgerRow]) -> dict[str, Any]:
    """INSERT_ROWS's parameters."""
    columns: dict[str, Any] = {
        "group": group,
        "row_topics": [row.topic for row in rows],
        "row_partitions": [row.partition for row in rows],
        "kinds": [row.kind for row in rows],
        "firsts": [row.first_offset for row in rows],
        "nexts": [row.next_offset for row in rows],
    }
    for index, name in enumerate(COUNTS):
        columns[name] = [row.counts[index] for row in rows]
    return columns


def insert_rows(conn: psycopg.Connection[Any], group: str, rows: Sequence[LedgerRow]) -> None:
    if rows:
        conn.execute(INSERT_ROWS, row_parameters(group, rows))
