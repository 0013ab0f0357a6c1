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
   recompute adds the archive to what is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any, Final

import psycopg

from worker.errors import SummariesBusyError
from worker.summaries import ARCHIVE, WITH_SAVINGS, lock_summary_tables

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
_DELETE_CHUNK: Final = f"""
WITH doomed AS (
    SELECT event_id FROM pattern_executions WHERE executed_at < %(horizon)s
    ORDER BY executed_at LIMIT %(limit)s
), deleted AS (
    DELETE FROM pattern_executions p USING doomed d WHERE p.event_id = d.event_id
    RETURNING {WITH_SAVINGS}
), archived AS (
    {ARCHIVE.increment_sql("deleted")}
)
SELECT count(*) FROM deleted
"""


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """The horizon in force afterwards, and how many raw executions were deleted."""

    horizon: datetime
    deleted: int
    dry_run: bool


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
            return RetentionResult(effective, deleted, dry_run=False)


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
