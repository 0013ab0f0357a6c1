"""Rating transitions, detected and recorded in the transaction whose data changes them.

A pattern's state is (rating, latest snapshot status) (worker.roi.rating_state). Two writers
record its changes, both through `record_changes`, both holding the pattern's summary row lock
(worker/db/ratings.py's rules, so sequences never repeat or skip and replicas never deadlock):

1. the write stage (worker.consume.write), in each batch's transaction, right after the batch
   incremented the summaries, for the patterns whose summaries it changed: a few statements per
   batch whatever its size;
2. `sweep`, run by the ratings publisher (worker.consume.ratings_publisher) at start and every
   minute: time alone moves a snapshot status (a pattern reaching day 30, 60 or 90 with no new
   event), and patterns stored before migration 0009 have no state yet. It finds the patterns
   whose state moved without taking any lock, then records them in transactions that lock their
   summary rows first, in pattern_id order, and look again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import psycopg

from ..db import ratings
from ..roi.methodology import Rating, Totals
from ..roi.rating_state import PatternState, Recorded, Transition, changes, state_of
from ..roi.snapshots import (
    SNAPSHOT_DAYS,
    STATUS_SUMS,
    SnapshotStatus,
    latest_statuses,
    status_totals,
)

SWEEP_CHUNK: Final = 500  # patterns recorded per sweep transaction (their summary rows locked)

# What deciding a pattern's state reads: its totals (the STATUS_SUMS, all a rating and a
# transition's figures need), its day 0, its recorded state, and today by the database's clock
# (ratings.UTC_TODAY: one reading, an uncorrelated subquery, for every row). One statement,
# locking nothing (the caller holds the summary row locks, or looks without any). A batch
# names its patterns (an index read of each, also in a generic plan); the sweep reads all.
_LOOK_ALL: Final = f"""
SELECT s.pattern_id, {", ".join(f"s.{column}" for column in STATUS_SUMS)},
       (s.first_executed_at AT TIME ZONE 'UTC')::date,
       r.rating, r.snapshot_status, r.sequence,
       coalesce(%(today)s::date, (SELECT {ratings.UTC_TODAY}))
FROM pattern_roi_summary AS s LEFT JOIN pattern_rating_state AS r USING (pattern_id)
"""
_LOOK: Final = f"{_LOOK_ALL} WHERE s.pattern_id = ANY(%(patterns)s::text[])"
_FIRST_SNAPSHOT: Final = timedelta(days=min(SNAPSHOT_DAYS))


@dataclass(frozen=True, slots=True)
class _Look:
    """What `_LOOK` read of one pattern."""

    totals: Totals
    day0: date | None
    stored: Recorded | None


def record_changes(
    conn: psycopg.Connection[Any],
    pattern_ids: Collection[str],
    min_executions: int,
    today: date | None = None,
) -> list[Transition]:
    """Records, in the caller's transaction, the transitions of these patterns whose state
    differs from the one recorded (or that have none yet); returns them (with the figures a
    transition records: executions, successes, net cost saved and investment).

    The caller holds the summary row locks of `pattern_ids` (rule 1 of worker/db/ratings.py).
    `today` (UTC; default: the database's clock, ratings.UTC_TODAY) decides which snapshots
    are complete. Two statements (one when no pattern has reached day 30), plus the record
    when something changed; each reads only these patterns' rows, and of pattern_roi_daily
    only the days of their baseline and latest window. Raises psycopg errors, and
    DatabaseUnavailableError when another transaction recorded first."""
    if not pattern_ids:
        return []
    found = _changes(conn, sorted(pattern_ids), min_executions, today)
    ratings.record(conn, [_row(t) for t in found])
    return found


def sweep(conn: psycopg.Connection[Any], min_executions: int, today: date | None = None) -> int:
    """Records the transitions no batch recorded: states moved by time alone, and patterns
    without a recorded state. `conn` is in autocommit mode; each chunk of SWEEP_CHUNK patterns
    is a transaction of its own. Returns how many transitions were recorded."""
    with conn.transaction():  # the look: one snapshot, no lock (the locked pass looks again)
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        moved = _changes(conn, None, min_executions, today)
    candidates = sorted(t.pattern_id for t in moved)
    recorded = 0
    for start in range(0, len(candidates), SWEEP_CHUNK):
        with conn.transaction():
            locked = ratings.lock_summaries(conn, candidates[start : start + SWEEP_CHUNK])
            recorded += len(record_changes(conn, locked, min_executions, today))
    return recorded


def _changes(
    conn: psycopg.Connection[Any],
    pattern_ids: Sequence[str] | None,
    min_executions: int,
    today: date | None,
) -> list[Transition]:
    """The transitions of these patterns (every pattern when None) that have a summary row."""
    looks, day = _look(conn, pattern_ids, today)
    if day is None:  # none of them has a summary row
        return []
    # Only a pattern at day 30 or later has a snapshot: the others' windows are not read.
    judged = [p for p, look in looks.items() if look.day0 and look.day0 + _FIRST_SNAPSHOT <= day]
    statuses: Mapping[str, SnapshotStatus | None] = {}
    if judged:
        with conn.cursor() as cur:
            statuses = latest_statuses(cur, sorted(judged), day, min_executions)
    current = {
        pattern_id: (state_of(look.totals, statuses.get(pattern_id), min_executions), look.totals)
        for pattern_id, look in looks.items()
    }
    recorded = {p: look.stored for p, look in looks.items() if look.stored is not None}
    return changes(current, recorded)


def _look(
    conn: psycopg.Connection[Any], pattern_ids: Sequence[str] | None, today: date | None
) -> tuple[dict[str, _Look], date | None]:
    """What `_LOOK` reads of these patterns, and the day it judges by (None without rows)."""
    query = _LOOK_ALL if pattern_ids is None else _LOOK
    rows = conn.execute(query, {"patterns": pattern_ids, "today": today}).fetchall()
    looks = {}
    for pattern_id, *sums, day0, rating, status, sequence, _ in rows:
        stored = None
        if rating is not None:
            stored = Recorded(PatternState(Rating(rating), status), int(sequence))
        looks[pattern_id] = _Look(status_totals(sums), day0, stored)
    return looks, rows[0][-1] if rows else None  # every row has the same day


def _row(transition: Transition) -> ratings.TransitionRow:
    old, new, totals = transition.old, transition.new, transition.totals
    return ratings.TransitionRow(
        pattern_id=transition.pattern_id,
        sequence=transition.sequence,
        old_rating=None if old is None else old.rating.value,
        old_snapshot_status=None if old is None else old.snapshot_status,
        new_rating=new.rating.value,
        new_snapshot_status=new.snapshot_status,
        executions=totals.executions,
        successful_executions=totals.successful_executions,
        cost_saved_usd=totals.cost_saved_usd,
        investment_usd=totals.investment_usd,
    )


def transition_of(row: ratings.TransitionRow) -> Transition:
    """A recorded transition as worker.roi.rating_state knows it (for its event)."""
    old = (
        None
        if row.old_rating is None
        else PatternState(Rating(row.old_rating), row.old_snapshot_status)
    )
    return Transition(
        pattern_id=row.pattern_id,
        sequence=row.sequence,
        old=old,
        new=PatternState(Rating(row.new_rating), row.new_snapshot_status),
        totals=Totals(
            executions=row.executions,
            successful_executions=row.successful_executions,
            cost_saved_usd=row.cost_saved_usd,
            investment_usd=row.investment_usd,
        ),
        occurred_at=row.occurred_at,
    )
