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

from collections.abc import Collection, Mapping
from datetime import date
from typing import Any, Final

import psycopg

from ..db import ratings
from ..roi.analytics import totals_from_row
from ..roi.methodology import Rating, Totals
from ..roi.rating_state import PatternState, Recorded, Transition, changes, state_of
from ..roi.snapshots import latest_statuses
from ..roi.summaries import SUMS

SWEEP_CHUNK: Final = 500  # patterns recorded per sweep transaction (their summary rows locked)

_COLUMNS: Final = ", ".join(SUMS)
_ALL_TOTALS: Final = f"SELECT pattern_id, {_COLUMNS} FROM pattern_roi_summary"
_TOTALS: Final = f"{_ALL_TOTALS} WHERE pattern_id = ANY(%s)"


def record_changes(
    conn: psycopg.Connection[Any],
    pattern_ids: Collection[str],
    min_executions: int,
    today: date | None = None,
) -> list[Transition]:
    """Records, in the caller's transaction, the transitions of these patterns whose state
    differs from the one recorded (or that have none yet); returns them.

    The caller holds the summary row locks of `pattern_ids` (rule 1 of worker/db/ratings.py).
    `today` (UTC; default: the database's clock, ratings.utc_today) decides which snapshots
    are complete. Raises psycopg errors, and
    DatabaseUnavailableError when another transaction recorded first."""
    if not pattern_ids:
        return []
    ids = sorted(pattern_ids)
    totals = {row[0]: totals_from_row(row[1:]) for row in conn.execute(_TOTALS, (ids,))}
    found = _changes(conn, totals, ratings.read_states(conn, ids), min_executions, today)
    ratings.record(conn, [_row(t) for t in found])
    return found


def sweep(conn: psycopg.Connection[Any], min_executions: int, today: date | None = None) -> int:
    """Records the transitions no batch recorded: states moved by time alone, and patterns
    without a recorded state. `conn` is in autocommit mode; each chunk of SWEEP_CHUNK patterns
    is a transaction of its own. Returns how many transitions were recorded."""
    with conn.transaction():  # the look: one snapshot, no lock (the locked pass looks again)
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        totals = {row[0]: totals_from_row(row[1:]) for row in conn.execute(_ALL_TOTALS)}
        moved = _changes(conn, totals, ratings.all_states(conn), min_executions, today)
    candidates = sorted(t.pattern_id for t in moved)
    recorded = 0
    for start in range(0, len(candidates), SWEEP_CHUNK):
        with conn.transaction():
            locked = ratings.lock_summaries(conn, candidates[start : start + SWEEP_CHUNK])
            recorded += len(record_changes(conn, locked, min_executions, today))
    return recorded


def _changes(
    conn: psycopg.Connection[Any],
    totals: Mapping[str, Totals],
    stored: Mapping[str, ratings.StoredState],
    min_executions: int,
    today: date | None,
) -> list[Transition]:
    ids = sorted(totals)
    with conn.cursor() as cur:
        day = ratings.utc_today(conn) if today is None else today
        statuses = latest_statuses(cur, ids, day, min_executions)
    current = {
        pattern_id: (state_of(t, statuses.get(pattern_id), min_executions), t)
        for pattern_id, t in totals.items()
    }
    recorded = {
        pattern_id: Recorded(PatternState(Rating(s.rating), s.snapshot_status), s.sequence)
        for pattern_id, s in stored.items()
    }
    return changes(current, recorded)


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
