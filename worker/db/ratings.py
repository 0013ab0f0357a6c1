"""Every statement on the rating state and its outbox (migrations/0009_rating_transitions.sql).

The callers decide what a state is (worker.roi.rating_state); here states are plain values.
Two rules make the records exact, and every writer follows them:
1. a pattern's state row changes only in a transaction that holds the pattern's
   pattern_roi_summary row lock: a batch holds it from its summary increment, the sweep takes it
   with `lock_summaries` first. So each writer reads the state the last one committed, and
   sequence = previous + 1 without a gap or a repeat (`record` checks it);
2. rows are locked in pattern_id order, summary rows before state rows, as the batches' summary
   upserts do: concurrent replicas wait for each other, never deadlock.

Publishing (one session at a time: `try_publisher_lock`) reads `unsent` rows in sequence order
and marks them `mark_sent` after the broker acknowledged them. `record` notifies CHANNEL on
commit, so the publisher, LISTENing, wakes at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import psycopg

from ..errors import DatabaseUnavailableError

CHANNEL: Final = "roi_rating_transitions"
PUBLISHER_LOCK_KEY: Final = 0x524F495F52415447  # "ROI_RATG": one ratings publisher at a time
# Today's UTC date by the database's clock, read when evaluated (clock_timestamp, not the
# transaction's start): every replica and the sweep judge which snapshots are complete by one
# clock, and a caller holding a pattern's summary row lock never sees an earlier day than the
# writer before it, so time alone cannot flip a snapshot status back and forth.
UTC_TODAY: Final = "(clock_timestamp() AT TIME ZONE 'UTC')::date"


@dataclass(frozen=True, slots=True)
class StoredState:
    """A pattern_rating_state row."""

    rating: str
    snapshot_status: str | None
    sequence: int


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """A pattern_rating_transitions row (`occurred_at` and `sent_at` None before it is
    recorded; `sent_at` None until the broker acknowledged it)."""

    pattern_id: str
    sequence: int
    old_rating: str | None
    old_snapshot_status: str | None
    new_rating: str
    new_snapshot_status: str | None
    executions: int
    successful_executions: int
    cost_saved_usd: Decimal
    investment_usd: Decimal
    occurred_at: datetime | None = None
    sent_at: datetime | None = None


_RECORDED_COLUMNS: Final = (
    "pattern_id",
    "sequence",
    "old_rating",
    "old_snapshot_status",
    "new_rating",
    "new_snapshot_status",
    "executions",
    "successful_executions",
    "cost_saved_usd",
    "investment_usd",
)
_TYPES: Final = ("text", "bigint", "text", "text", "text", "text", "bigint", "bigint")
_ARRAY_TYPES: Final = (*_TYPES, "numeric", "numeric")
_ALL_COLUMNS: Final = ", ".join((*_RECORDED_COLUMNS, "occurred_at", "sent_at"))

_ALL_STATES: Final = (
    "SELECT pattern_id, rating, snapshot_status, sequence FROM pattern_rating_state"
)
_READ_STATES: Final = f"{_ALL_STATES} WHERE pattern_id = ANY(%s)"
_LOCK_SUMMARIES: Final = (
    "SELECT pattern_id FROM pattern_roi_summary WHERE pattern_id = ANY(%s) "
    "ORDER BY pattern_id FOR UPDATE"
)
# The state rows move only from the sequence this transaction read (rule 1), in pattern_id
# order (rule 2); a transition is inserted only beside a state row that moved.
_RECORD: Final = f"""
WITH changes AS (
    SELECT * FROM unnest({", ".join(f"%s::{t}[]" for t in _ARRAY_TYPES)})
        AS c({", ".join(_RECORDED_COLUMNS)})
), state AS (
    INSERT INTO pattern_rating_state AS s (pattern_id, rating, snapshot_status, sequence)
    SELECT pattern_id, new_rating, new_snapshot_status, sequence FROM changes ORDER BY pattern_id
    ON CONFLICT (pattern_id) DO UPDATE
    SET rating = excluded.rating, snapshot_status = excluded.snapshot_status,
        sequence = excluded.sequence, changed_at = now()
    WHERE s.sequence = excluded.sequence - 1
    RETURNING pattern_id
), recorded AS (
    INSERT INTO pattern_rating_transitions ({", ".join(_RECORDED_COLUMNS)})
    SELECT {", ".join(f"c.{column}" for column in _RECORDED_COLUMNS)}
    FROM changes c JOIN state USING (pattern_id)
    ORDER BY c.pattern_id
    RETURNING 1
)
SELECT n, pg_notify('{CHANNEL}', '') FROM (SELECT count(*) AS n FROM recorded) AS r
"""
_UNSENT: Final = (
    f"SELECT {_ALL_COLUMNS} FROM pattern_rating_transitions WHERE sent_at IS NULL "
    "ORDER BY pattern_id, sequence LIMIT %s"
)
_MARK_SENT: Final = """
UPDATE pattern_rating_transitions t SET sent_at = now()
FROM unnest(%s::text[], %s::bigint[]) AS k(pattern_id, sequence)
WHERE t.pattern_id = k.pattern_id AND t.sequence = k.sequence AND t.sent_at IS NULL
"""
_COUNT_UNSENT: Final = (
    "SELECT count(*), min(occurred_at) FROM pattern_rating_transitions WHERE sent_at IS NULL"
)
_SINCE: Final = (
    f"SELECT {_ALL_COLUMNS} FROM pattern_rating_transitions WHERE occurred_at >= %s "
    "ORDER BY occurred_at, pattern_id, sequence"
)
_LIST: Final = f"""
SELECT {_ALL_COLUMNS} FROM (
    SELECT * FROM pattern_rating_transitions
    WHERE (%(pattern)s::text IS NULL OR pattern_id = %(pattern)s)
    ORDER BY occurred_at DESC, pattern_id DESC, sequence DESC
    LIMIT %(limit)s
) AS latest
ORDER BY occurred_at, pattern_id, sequence
"""


def read_states(
    conn: psycopg.Connection[Any], pattern_ids: Sequence[str]
) -> dict[str, StoredState]:
    """The recorded state of each of these patterns that has one."""
    rows = conn.execute(_READ_STATES, (list(pattern_ids),)).fetchall()
    return {row[0]: StoredState(row[1], row[2], int(row[3])) for row in rows}


def lock_summaries(conn: psycopg.Connection[Any], pattern_ids: Iterable[str]) -> list[str]:
    """Locks these patterns' pattern_roi_summary rows until the transaction ends, in pattern_id
    order (rule 1 for a writer that increments no summary); returns those that exist."""
    rows = conn.execute(_LOCK_SUMMARIES, (sorted(pattern_ids),)).fetchall()
    return [row[0] for row in rows]


def record(conn: psycopg.Connection[Any], transitions: Sequence[TransitionRow]) -> None:
    """Records the transitions and the new states they lead to, in one statement, and
    notifies CHANNEL when the transaction commits. Raises DatabaseUnavailableError (retry)
    when a state row was not at the sequence before a transition's: another transaction
    recorded first, which the locking rules exclude; trying again reads its state."""
    if not transitions:
        return
    columns = [[getattr(t, column) for t in transitions] for column in _RECORDED_COLUMNS]
    row = conn.execute(_RECORD, columns).fetchone()
    recorded = int(row[0]) if row else 0
    if recorded != len(transitions):
        raise DatabaseUnavailableError(
            f"PostgreSQL: {len(transitions) - recorded} rating transitions were recorded by "
            "another transaction first; trying again"
        )


def unsent(conn: psycopg.Connection[Any], limit: int) -> list[TransitionRow]:
    """Up to `limit` transitions not yet acknowledged, in pattern_id and sequence order."""
    return [_transition(row) for row in conn.execute(_UNSENT, (limit,)).fetchall()]


def mark_sent(conn: psycopg.Connection[Any], keys: Sequence[tuple[str, int]]) -> None:
    """Marks these (pattern_id, sequence) transitions as acknowledged by the broker."""
    if keys:
        conn.execute(_MARK_SENT, ([k[0] for k in keys], [k[1] for k in keys]))


def count_unsent(conn: psycopg.Connection[Any]) -> tuple[int, datetime | None]:
    """How many transitions wait to be published, and when the oldest was recorded."""
    row = conn.execute(_COUNT_UNSENT).fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


def latest(
    conn: psycopg.Connection[Any], pattern_id: str | None, limit: int
) -> list[TransitionRow]:
    """The latest `limit` transitions (of one pattern, or all), oldest first."""
    rows = conn.execute(_LIST, {"pattern": pattern_id, "limit": limit}).fetchall()
    return [_transition(row) for row in rows]


def recorded_since(conn: psycopg.Connection[Any], since: datetime) -> list[TransitionRow]:
    """Every transition recorded at or after `since`, oldest first (the demo's check)."""
    rows = conn.execute(_SINCE, (since,)).fetchall()
    return [_transition(row) for row in rows]


def try_publisher_lock(conn: psycopg.Connection[Any]) -> bool:
    """Takes the publisher's session-level advisory lock if no other session holds it. It is
    held until this session ends, however it ends (a killed process's session ends with its
    connection), so another worker takes over at its next try."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (PUBLISHER_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def listen(conn: psycopg.Connection[Any]) -> None:
    """Subscribes this (autocommit) session to CHANNEL: conn.notifies() yields on each record."""
    conn.execute(f"LISTEN {CHANNEL}")


def _transition(row: Sequence[Any]) -> TransitionRow:
    return TransitionRow(
        pattern_id=row[0],
        sequence=int(row[1]),
        old_rating=row[2],
        old_snapshot_status=row[3],
        new_rating=row[4],
        new_snapshot_status=row[5],
        executions=int(row[6]),
        successful_executions=int(row[7]),
        cost_saved_usd=Decimal(row[8]),
        investment_usd=Decimal(row[9]),
        occurred_at=row[10],
        sent_at=row[11],
    )
