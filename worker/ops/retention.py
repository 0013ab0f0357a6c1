"""Retention: delete raw executions older than a horizon while every summary stays exact.

`apply_retention` runs these steps, in order (docs/operations.md#retention):
1. record the horizon (it only moves forward). From then on the write stage counts an arriving
   event older than it as expired and neither stores nor counts it, so a replay after
   retention cannot count anything twice;
2. wait for the batches still running under the old horizon (a SHARE lock on the summary
   tables waits for every batch that started incrementing them, and is released at once);
3. delete the old executions in chunks, each one transaction that also adds the deleted rows'
   aggregate, per pattern and UTC day, to pattern_roi_archive. The summaries are not touched:
   they still count the deleted executions, and `roi-worker verify` still holds, because the
   recompute adds the archive to what is left. Each deleted execution is also counted on its
   batch's offset ledger row (`deleted_by_retention`), so `roi-worker reconcile` still holds;
4. merge the offset ledger rows written before the horizon whose executions are all gone: per
   group and partition, consecutive rows become one with the same range and sums.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any, Final

import psycopg

from ..db.ledger import COUNTS
from ..errors import SummariesBusyError
from ..roi.summaries import ARCHIVE, WITH_SAVINGS, lock_summary_tables

CHUNK_ROWS: Final = 10_000
LOCK_TIMEOUT_MS: Final = 30_000

_CURRENT: Final = "SELECT horizon FROM retention_horizon"
_RECORD: Final = """
INSERT INTO retention_horizon (horizon) VALUES (%s)
ON CONFLICT (singleton) DO UPDATE
SET horizon = GREATEST(retention_horizon.horizon, excluded.horizon), updated_at = now()
RETURNING horizon
"""
_COUNT: Final = "SELECT count(*) FROM pattern_executions WHERE executed_at < %s"
# The oldest rows first; the archive rows are upserted in key order (like every summary).
# Each deleted row is counted on the offset ledger row of the batch that inserted it (same
# topic and partition, its offset in the range, written_at = ingested_at), so that reconcile
# still matches the ledger with the rows left.
_DELETE_CHUNK: Final = f"""
WITH doomed AS (
    SELECT event_id FROM pattern_executions WHERE executed_at < %(horizon)s
    ORDER BY executed_at LIMIT %(limit)s
), deleted AS (
    DELETE FROM pattern_executions p USING doomed d WHERE p.event_id = d.event_id
    RETURNING {WITH_SAVINGS}, source_topic, source_partition, source_offset, ingested_at
), archived AS (
    {ARCHIVE.increment_sql("deleted")}
), owners AS (
    SELECT (SELECT min(l.id) FROM offset_ledger l
            WHERE l.topic = d.source_topic AND l.partition = d.source_partition
              AND l.written_at = d.ingested_at AND l.kind = 'batch'
              AND d.source_offset >= l.first_offset AND d.source_offset < l.next_offset) AS id
    FROM deleted d
), counted AS (
    UPDATE offset_ledger l SET deleted_by_retention = l.deleted_by_retention + o.deleted
    FROM (SELECT id, count(*) AS deleted FROM owners WHERE id IS NOT NULL GROUP BY id) o
    WHERE l.id = o.id
)
SELECT count(*) FROM deleted
"""

COMPACT_LOCK_KEY: Final = 0x524F495F4C444752  # "ROI_LDGR": one ledger compaction at a time
RETENTION_LOCK_KEY: Final = 0x524F495F52544E54  # "ROI_RTNT": one retention run at a time
_SUMS: Final = ", ".join(f"sum(l.{c}) AS {c}" for c in (*COUNTS, "deleted_by_retention"))
_SETS: Final = ", ".join(f"{c} = m.{c}" for c in (*COUNTS, "deleted_by_retention", "batches"))
# Merges, per group and partition, each run of consecutive batch rows (in id order, offsets
# contiguous) written before the horizon whose inserted rows retention has all deleted, into
# the run's first row: the same range and sums, so the rows still tile and add up.
_COMPACT_LEDGER: Final = f"""
WITH marked AS (
    SELECT id, consumer_group, topic, partition, first_offset, next_offset,
           kind = 'batch' AND inserted = deleted_by_retention AND written_at < %(before)s AS done
    FROM offset_ledger
), ordered AS (
    SELECT *, lag(done) OVER w AS previous_done, lag(next_offset) OVER w AS previous_next
    FROM marked
    WINDOW w AS (PARTITION BY consumer_group, topic, partition ORDER BY id)
), runs AS (
    SELECT id, consumer_group, topic, partition, done,
           sum(CASE WHEN done AND previous_done AND previous_next = first_offset THEN 0 ELSE 1 END)
               OVER (PARTITION BY consumer_group, topic, partition ORDER BY id) AS run
    FROM ordered
), merged AS (
    SELECT r.consumer_group, r.topic, r.partition, r.run, min(l.id) AS keep,
           max(l.next_offset) AS next_offset, {_SUMS}, sum(l.batches) AS batches
    FROM runs r JOIN offset_ledger l ON l.id = r.id
    WHERE r.done
    GROUP BY r.consumer_group, r.topic, r.partition, r.run
    HAVING count(*) > 1
), kept AS (
    UPDATE offset_ledger l SET next_offset = m.next_offset, {_SETS}
    FROM merged m WHERE l.id = m.keep
), dropped AS (
    DELETE FROM offset_ledger l
    USING runs r, merged m
    WHERE l.id = r.id AND r.done AND l.id <> m.keep
      AND (r.consumer_group, r.topic, r.partition, r.run)
          = (m.consumer_group, m.topic, m.partition, m.run)
    RETURNING 1
)
SELECT count(*) FROM dropped
"""


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """The horizon in force afterwards, how many raw executions were deleted, and how many
    offset ledger rows were merged into others."""

    horizon: datetime
    deleted: int
    dry_run: bool
    merged: int = 0


def horizon_for(days: int, today: date) -> datetime:
    """The start (00:00 UTC) of the day `days` days before today: older executions go."""
    return datetime.combine(today - timedelta(days=days), clock_time(0), tzinfo=UTC)


def current_horizon(conn: psycopg.Connection[Any]) -> datetime | None:
    row = conn.execute(_CURRENT).fetchone()
    return None if row is None else row[0]


def apply_retention(
    conn: psycopg.Connection[Any],
    horizon: datetime,
    *,
    dry_run: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> RetentionResult:
    """Records `horizon` and deletes the raw executions before it (module docstring).

    `conn` must be in autocommit mode: every step commits on its own, so an interrupted run
    leaves a consistent database and simply continues where it stopped when run again.
    `progress` is called with the running total after each chunk. A horizon earlier than the
    recorded one does not move it back; the recorded one applies.
    """
    if dry_run:
        recorded = current_horizon(conn)
        effective = horizon if recorded is None else max(horizon, recorded)
        row = conn.execute(_COUNT, (effective,)).fetchone()
        return RetentionResult(effective, int(row[0]) if row else 0, dry_run=True)
    with retention_lock(conn, wait=True):
        return _apply(conn, horizon, chunk_rows, progress)


@contextmanager
def retention_lock(conn: psycopg.Connection[Any], *, wait: bool) -> Iterator[bool]:
    """The session's hold on RETENTION_LOCK_KEY for the block: two runs at once (a worker's
    scheduled one, an operator's) would each wait for the other's locks. With `wait` False,
    yields False at once when another session holds it. Reentrant, like every advisory lock."""
    query = "SELECT pg_advisory_lock(%s), true" if wait else "SELECT pg_try_advisory_lock(%s)"
    row = conn.execute(query, (RETENTION_LOCK_KEY,)).fetchone()
    held = bool(row and row[-1])
    try:
        yield held
    finally:
        if held:
            conn.execute("SELECT pg_advisory_unlock(%s)", (RETENTION_LOCK_KEY,))


def _apply(
    conn: psycopg.Connection[Any],
    horizon: datetime,
    chunk_rows: int,
    progress: Callable[[int], None] | None,
) -> RetentionResult:
    with conn.transaction():
        row = conn.execute(_RECORD, (horizon,)).fetchone()
    effective = row[0] if row else horizon
    _wait_for_running_batches(conn)
    deleted = 0
    while True:
        with conn.transaction():
            row = conn.execute(
                _DELETE_CHUNK, {"horizon": effective, "limit": chunk_rows}
            ).fetchone()
        count = int(row[0]) if row else 0
        deleted += count
        if progress is not None and count:
            progress(deleted)
        if count < chunk_rows:
            merged = compact(conn, effective)
            return RetentionResult(effective, deleted, dry_run=False, merged=merged)


def compact(conn: psycopg.Connection[Any], before: datetime) -> int:
    """Merges the offset ledger rows written before `before` whose inserted executions are all
    deleted (_COMPACT_LEDGER); returns how many rows it merged away. One run at a time."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMPACT_LOCK_KEY,))
        row = conn.execute(_COMPACT_LEDGER, {"before": before}).fetchone()
    return int(row[0]) if row else 0


def _wait_for_running_batches(conn: psycopg.Connection[Any]) -> None:
    """Waits until every batch that might not see the new horizon has finished.

    A batch takes its locks on the summary tables before its statement's snapshot, so one
    that could still insert an execution older than the horizon holds them now; a SHARE lock
    is granted only once all of those have committed or rolled back.
    """
    with conn.transaction():
        granted = lock_summary_tables(conn, "SHARE", LOCK_TIMEOUT_MS)
        if not granted:
            raise SummariesBusyError(
                f"the horizon is recorded, but batches held the summary tables for more than "
                f"{LOCK_TIMEOUT_MS / 1000:g} s; nothing was deleted: run retention again"
            )
