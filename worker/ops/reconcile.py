"""`roi-worker reconcile`: proves, from the offset ledger (worker/db/ledger.py), that every offset
a group stored is accounted for.

Per group, topic and partition, in one read-only snapshot:
1. the ledger's ranges tile [start, stored next offset) with no gap or overlap. The ledger of
   a partition begins with a `start` row (or a `reset`, or the `unaudited` offsets stored
   before the ledger existed). A `reset` or `replay` row is a jump: it ends one stretch where
   the group stood (which must be where the ranges before it reached) and starts the next
   where it moved to, backwards or forwards. `unaudited` ranges tile like the others but
   account for nothing; they are reported, not failed;
2. each batch row's counts add up to its size;
3. the inserted rows still stored match their batches: for each batch (rows of one partition
   and one transaction share written_at = ingested_at), its inserted count equals the rows still
   stored plus those retention deleted, and their source offsets lie in its range; a row stored
   since the ledger exists that no batch inserted is a mismatch.

A group `roi-worker offsets prune` removed has no stored offsets and no chain left to walk:
prune deletes its consumer_offsets rows and the ledger rows that account for nothing still
stored, and keeps, marked `pruned_at`, the batch rows whose inserted executions are still
stored and the unaudited ranges written since the ledger exists. Step 1 and 2 skip those rows
(the database's constraints made each batch row add up when it was written); step 3 still
matches the stored executions against them, so pruning one group changes no other group's
audit and leaves no stored row unexplained.

`Walk` (the tiling and counts of one partition) is pure; `reconcile` reads the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import psycopg

from ..db import offsets as stored_offsets
from ..db.ledger import BATCH, COUNTS, JUMPS, LEDGER_MIGRATION, START, UNAUDITED, Stored
from ..db.offsets import Key

GAP, OVERLAP, MISMATCH = "gap", "overlap", "mismatch"
_FETCH_ROWS: Final = 10_000

_COUNT_COLUMNS: Final = ", ".join(COUNTS)
_JUMP_KINDS: Final = ", ".join(f"'{kind}'" for kind in sorted(JUMPS))
_SCOPE: Final = (
    "(%(group)s::text IS NULL OR consumer_group = %(group)s) "
    "AND (%(topic)s::text IS NULL OR topic = %(topic)s)"
)

# In check order: per partition, stretch by stretch (a jump starts one, in id order), the jump
# first, then the ranges by first offset.
_ROWS: Final = f"""
SELECT consumer_group, topic, partition, id, kind, first_offset, next_offset, {_COUNT_COLUMNS},
       batches, written_at
FROM (
    SELECT *, count(*) FILTER (WHERE kind IN ({_JUMP_KINDS}))
                  OVER (PARTITION BY consumer_group, topic, partition ORDER BY id) AS stretch
    FROM offset_ledger
    WHERE {_SCOPE} AND pruned_at IS NULL
) l
ORDER BY consumer_group, topic, partition, stretch, kind IN ({_JUMP_KINDS}) DESC, first_offset,
         next_offset, id
"""

_LEDGER_SINCE: Final = "SELECT applied_at FROM schema_migrations WHERE name = %s"

# Batches (one partition, one transaction) whose inserted rows do not match the rows stored,
# and stored rows that no batch inserted (`unaudited` when an unaudited range of the ledger
# holds them; _attribute also looks in the unaudited gaps of the stored offsets). Batches of
# one partition from two groups that began in the same microsecond share a key: they are
# checked together, which stays exact.
_INSERTED: Final = f"""
WITH ledger AS (
    SELECT topic, partition, written_at, sum(inserted) AS inserted,
           sum(deleted_by_retention) AS deleted, min(first_offset) AS first_offset,
           max(next_offset) AS next_offset,
           array_agg(DISTINCT consumer_group ORDER BY consumer_group) AS groups,
           coalesce(array_agg(DISTINCT consumer_group ORDER BY consumer_group)
                    FILTER (WHERE pruned_at IS NOT NULL), '{{}}') AS pruned
    FROM offset_ledger
    WHERE kind = '{BATCH}' AND (%(topic)s::text IS NULL OR topic = %(topic)s)
    GROUP BY topic, partition, written_at
), stored AS (
    SELECT source_topic AS topic, source_partition AS partition, ingested_at AS written_at,
           count(*) AS present, min(source_offset) AS low, max(source_offset) AS high
    FROM pattern_executions
    WHERE ingested_at >= %(since)s AND (%(topic)s::text IS NULL OR source_topic = %(topic)s)
    GROUP BY 1, 2, 3
)
SELECT topic, partition, written_at, l.groups, coalesce(l.inserted, 0), coalesce(l.deleted, 0),
       l.first_offset, l.next_offset, coalesce(s.present, 0), s.low, s.high, l.pruned,
       l.groups IS NULL AND EXISTS (
           SELECT 1 FROM offset_ledger u
           WHERE u.kind = '{UNAUDITED}' AND u.topic = s.topic AND u.partition = s.partition
             AND u.first_offset <= s.low AND s.high < u.next_offset
       ) AS unaudited
FROM ledger l FULL JOIN stored s USING (topic, partition, written_at)
WHERE coalesce(l.inserted, 0) - coalesce(l.deleted, 0) <> coalesce(s.present, 0)
   OR s.low < l.first_offset OR s.high >= l.next_offset
ORDER BY topic, partition, written_at
"""


@dataclass(frozen=True, slots=True)
class Row:
    """An offset_ledger row as reconcile reads it (counts in ledger.COUNTS order)."""

    id: int
    kind: str
    first_offset: int
    next_offset: int
    counts: tuple[int, ...] = (0,) * len(COUNTS)
    batches: int = 0
    written_at: datetime | None = None

    @property
    def size(self) -> int:
        return self.next_offset - self.first_offset


@dataclass(frozen=True, slots=True)
class Problem:
    """A gap, an overlap or a mismatch, with where it is."""

    kind: str
    group: str | None
    topic: str
    partition: int
    message: str

    def __str__(self) -> str:
        where = f"{self.topic}/{self.partition}"
        if self.group is not None:
            where = f"group {self.group}, {where}"
        return f"{self.kind}: {where}: {self.message}"


@dataclass(slots=True)
class PartitionAudit:
    """One partition of one group: what its ledger accounts for, and what is wrong."""

    group: str
    topic: str
    partition: int
    start: int | None = None  # where the ledger begins
    stored: int | None = None  # the stored next offset (None: no consumer_offsets row)
    batches: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * len(COUNTS))
    unaudited: int = 0  # offsets stored without a ledger
    moves: int = 0  # resets and replays that moved the position
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Stored rows of this topic and partition that no batch inserted (a problem of no group).
    unattributed: bool = False

    @property
    def key(self) -> Key:
        return (self.group, self.topic, self.partition)

    @property
    def status(self) -> str:
        kinds = {p.kind for p in self.problems} | ({MISMATCH} if self.unattributed else set())
        return ", ".join(sorted(kind.upper() for kind in kinds)) if kinds else "ok"


def _span(first: int, end: int) -> str:
    """`offsets 5 to 9 (5)` for [first, end)."""
    count = end - first
    return f"offset {first} (1)" if count == 1 else f"offsets {first} to {end - 1} ({count:,})"


def _have(first: int, end: int) -> str:
    return "has" if end - first == 1 else "have"


def _are(first: int, end: int) -> str:
    return "is" if end - first == 1 else "are"


class Walk:
    """Checks one partition's ledger rows, fed in check order: stretch by stretch (a reset or
    replay row begins one, in id order), its jump row first, then its ranges by first offset
    (`check_order` sorts rows given in id order that way)."""

    def __init__(self, group: str, topic: str, partition: int) -> None:
        self.audit = PartitionAudit(group, topic, partition)
        self._position: int | None = None  # where the ranges fed so far reach

    def _problem(self, kind: str, message: str) -> None:
        audit = self.audit
        audit.problems.append(Problem(kind, audit.group, audit.topic, audit.partition, message))

    def _join(self, reached: int, first: int, what: str) -> None:
        """Reports a range (or jump) beginning at `first` when the ledger reached `reached`."""
        if first > reached:
            self._problem(
                GAP, f"{_span(reached, first)} {_have(reached, first)} no ledger row {what}"
            )
        elif first < reached:
            self._problem(
                OVERLAP,
                f"{_span(first, reached)} {_are(first, reached)} in more than one ledger row "
                f"{what}",
            )

    def feed(self, row: Row) -> None:
        audit = self.audit
        if any(row.counts) and row.kind != BATCH:
            self._problem(MISMATCH, f"ledger row {row.id} ({row.kind}) counts messages")
        if row.kind in JUMPS:
            if self._position is not None:
                self._join(
                    self._position, row.first_offset, f"(before the {row.kind} row {row.id})"
                )
            elif audit.start is None:
                audit.start = row.next_offset
            if row.kind != START:
                audit.moves += 1
                when = f" at {row.written_at:%Y-%m-%d %H:%M:%S}" if row.written_at else ""
                audit.notes.append(
                    f"{row.kind}: group {audit.group}, {audit.topic}/{audit.partition}: moved "
                    f"from {row.first_offset} to {row.next_offset}{when}"
                )
            self._position = row.next_offset
            return
        if row.size <= 0:
            self._problem(MISMATCH, f"ledger row {row.id} has an empty range at {row.first_offset}")
            return
        if self._position is None:
            # A ledger begins with a start (or reset) row, or with the offsets stored before it.
            if row.kind != UNAUDITED:
                self._problem(
                    GAP,
                    f"the ledger has no start: its first row ({row.id}) begins at "
                    f"{row.first_offset}, and the rows before it are missing",
                )
            self._position = row.first_offset
            if audit.start is None:
                audit.start = row.first_offset
        self._join(self._position, row.first_offset, f"(at ledger row {row.id})")
        self._position = max(self._position, row.next_offset)
        if row.kind == UNAUDITED:
            audit.unaudited += row.size
            audit.notes.append(
                f"unaudited: group {audit.group}, {audit.topic}/{audit.partition}: "
                f"{_span(row.first_offset, row.next_offset)} stored without a ledger (before "
                "it existed, or by a worker of an older release)"
            )
            return
        audit.batches += row.batches
        for index, count in enumerate(row.counts):
            audit.counts[index] += count
        if sum(row.counts) != row.size:
            self._problem(
                MISMATCH,
                f"ledger row {row.id} ({_span(row.first_offset, row.next_offset)}) counts "
                f"{sum(row.counts):,} offsets, not {row.size:,}",
            )

    def finish(self, stored: Stored | None) -> PartitionAudit:
        """Checks that the ranges end where the group's stored offset says, and returns the
        audit. A difference a writer that keeps no ledger made (stored.next_offset moved away
        from stored.ledger_offset) is what its next batch records: reported, not failed."""
        audit, reached = self.audit, self._position
        if stored is None:
            if reached is not None:
                self._problem(
                    MISMATCH, f"the ledger reaches offset {reached} but no offset is stored"
                )
            return audit
        audit.stored = stored.next_offset
        end = stored.ledger_offset
        if reached is None:
            if end > 0:
                self._problem(GAP, f"no ledger row accounts for the offsets stored before {end}")
        elif reached < end:
            self._problem(
                GAP,
                f"{_span(reached, end)} {_have(reached, end)} no ledger row (stored offset {end})",
            )
        elif reached > end:
            self._problem(
                OVERLAP,
                f"the ledger accounts for {_span(end, reached)} beyond the stored offset {end}",
            )
        where = f"group {audit.group}, {audit.topic}/{audit.partition}"
        if end < stored.next_offset:
            audit.unaudited += stored.next_offset - end
            audit.notes.append(
                f"unaudited: {where}: {_span(end, stored.next_offset)} stored by a writer that "
                "keeps no ledger (a worker of an older release?); its next batch records them"
            )
            if audit.start is None:
                audit.start = end
        elif end > stored.next_offset:
            audit.moves += 1
            audit.notes.append(
                f"reset: {where}: moved back from {end} to {stored.next_offset} by a writer "
                "that keeps no ledger; its next batch records it"
            )
        return audit


def check_order(rows: Iterable[Row]) -> list[Row]:
    """Rows of one partition given in id order, sorted as Walk takes them."""
    ordered: list[tuple[int, bool, int, int, int, Row]] = []
    stretch = 0
    for row in rows:
        jump = row.kind in JUMPS
        stretch += jump
        ordered.append((stretch, not jump, row.first_offset, row.next_offset, row.id, row))
    return [entry[-1] for entry in sorted(ordered, key=lambda entry: entry[:5])]


def audit_partition(key: Key, rows: Iterable[Row], stored: Stored | None) -> PartitionAudit:
    """The audit of one partition from its rows in id order."""
    walk = Walk(*key)
    for row in check_order(rows):
        walk.feed(row)
    return walk.finish(stored)


@dataclass(slots=True)
class Reconciliation:
    """Every partition audited, and the stored rows no batch of the ledger inserted."""

    partitions: list[PartitionAudit]
    unattributed: list[Problem]  # stored rows that no batch inserted (no group)
    unaudited_rows: int = 0  # stored rows inside unaudited ranges, not checked
    # Batches of pruned groups whose inserted rows do not match the rows stored.
    pruned: list[Problem] = field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        audits = [p for audit in self.partitions for p in audit.problems]
        return audits + self.pruned + self.unattributed

    @property
    def ok(self) -> bool:
        return not self.problems


def reconcile(
    conn: psycopg.Connection[Any], group: str | None = None, topic: str | None = None
) -> Reconciliation:
    """Audits every partition of `group` (every group if None) on `topic` (every topic if
    None) in one REPEATABLE READ, READ ONLY snapshot. `conn` must not be in a transaction.

    The stored rows no batch inserted are checked only for every group (`group` None)."""
    scope = {"group": group, "topic": topic}
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Every group's: their unaudited gaps may hold stored rows no batch inserted.
        every_group = stored_offsets.load_all(conn, topic=topic)
        stored = {k: v for k, v in every_group.items() if group is None or k[0] == group}
        audits: dict[Key, PartitionAudit] = {}
        with conn.cursor(name="roi_reconcile") as cursor:  # streamed: the ledger may be large
            cursor.itersize = _FETCH_ROWS
            cursor.execute(_ROWS, scope)
            walk: Walk | None = None
            for values in cursor:
                key: Key = (values[0], values[1], values[2])
                if walk is None or walk.audit.key != key:
                    if walk is not None:
                        audits[walk.audit.key] = walk.finish(stored.get(walk.audit.key))
                    walk = Walk(*key)
                walk.feed(_row(values))
            if walk is not None:
                audits[walk.audit.key] = walk.finish(stored.get(walk.audit.key))
        for key, position in stored.items():
            if key not in audits:
                audits[key] = Walk(*key).finish(position)
        found = conn.execute(_LEDGER_SINCE, (LEDGER_MIGRATION,)).fetchone()
        since = found[0] if found else datetime.min.replace(tzinfo=UTC)
        mismatches = conn.execute(_INSERTED, {**scope, "since": since}).fetchall()
    result = Reconciliation(sorted(audits.values(), key=lambda a: a.key), [])
    _attribute(result, audits, mismatches, group, every_group)
    return result


def _row(values: tuple[Any, ...]) -> Row:
    counts = tuple(int(v) for v in values[7 : 7 + len(COUNTS)])
    batches, written_at = values[7 + len(COUNTS)], values[8 + len(COUNTS)]
    return Row(values[3], values[4], values[5], values[6], counts, batches, written_at)


def _attribute(
    result: Reconciliation,
    audits: dict[Key, PartitionAudit],
    mismatches: list[tuple[Any, ...]],
    group: str | None,
    stored: dict[Key, Stored],
) -> None:
    """Adds the inserted-rows mismatches to the partitions of the groups they concern (those of
    pruned groups to `result.pruned`); stored rows that no batch inserted count as unaudited
    inside an unaudited range of the ledger or of a group's `stored` offsets."""
    for row in mismatches:
        topic, partition, written_at, groups, inserted, deleted, first, end = row[:8]
        present, low, high, pruned, unaudited = row[8:]
        when = f"{written_at:%Y-%m-%d %H:%M:%S.%f%z}"
        if groups is None:
            if unaudited or any(
                (t, p) == (topic, partition) and s.ledger_offset <= low and high < s.next_offset
                for (_, t, p), s in stored.items()
            ):
                result.unaudited_rows += present
            elif group is None:
                for checked in audits.values():
                    if (checked.topic, checked.partition) == (topic, partition):
                        checked.unattributed = True
                result.unattributed.append(
                    Problem(
                        MISMATCH,
                        None,
                        topic,
                        partition,
                        f"{present:,} stored {'row' if present == 1 else 'rows'} (source "
                        f"offsets {low} to {high}, ingested {when}) "
                        f"{'was' if present == 1 else 'were'} inserted by no batch in the ledger",
                    )
                )
            continue
        parts = [
            f"the batch written {when} inserted {inserted:,} rows from {_span(first, end)}; "
            f"{present:,} are stored and {deleted:,} were deleted by retention"
        ]
        if present and (low < first or high >= end):
            parts.append(
                f"stored rows of it have source offsets {low} to {high}, outside its range"
            )
        for name in groups:
            if name in pruned:  # its chain is not walked: no audit of the partition to fail
                if group is None:
                    message = "; ".join(parts) + " (a batch of a pruned group)"
                    result.pruned.append(Problem(MISMATCH, name, topic, partition, message))
                continue
            concerned = audits.get((name, topic, partition))
            if concerned is None or (group is not None and name != group):
                continue
            concerned.problems.append(Problem(MISMATCH, name, topic, partition, "; ".join(parts)))
