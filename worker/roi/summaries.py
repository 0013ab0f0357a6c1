"""The ROI summary columns and how each is aggregated from stored executions.

One definition serves the write stage (incrementing summaries by the rows a batch inserted) and
the full recompute that checks them, so the two cannot disagree about what a column means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg.pq import TransactionStatus

from ..contract.outcome import OUTCOMES
from ..errors import SummariesBusyError
from .methodology import COST_ANOMALY_FACTOR

REBUILD_LOCK_TIMEOUT_MS: Final = 10_000

# Per execution (docs/roi-methodology.md): a failed run saved nothing and wasted its run.
TIME_SAVED: Final = (
    "CASE WHEN success THEN estimated_time_seconds - execution_time_seconds "
    "ELSE -execution_time_seconds END"
)
COST_SAVED: Final = "CASE WHEN success THEN estimated_cost - actual_cost ELSE -actual_cost END"
DAY: Final = "(executed_at AT TIME ZONE 'UTC')::date"

# Summary column -> aggregate over execution rows that carry `time_saved` and `cost_saved`.
# Every one is a count or a sum, so a batch's aggregate is simply added to the stored value.
SUMS: Final = {
    "total_executions": "count(*)",
    "successful_executions": "count(*) FILTER (WHERE success)",
    "total_time_saved_seconds": "sum(time_saved)",
    "total_cost_saved_usd": "sum(cost_saved)",
    "total_actual_cost_usd": "sum(actual_cost)",
    "total_estimated_cost_usd": "sum(estimated_cost)",
    "total_execution_time_seconds": "sum(execution_time_seconds)",
    "total_estimated_time_seconds": "sum(estimated_time_seconds)",
    # The flags of worker.roi.methodology.Totals.of_execution.
    "negative_savings_executions": (
        "count(*) FILTER (WHERE success AND (time_saved < 0 OR cost_saved < 0))"
    ),
    "cost_anomaly_executions": (
        f"count(*) FILTER (WHERE actual_cost > {COST_ANOMALY_FACTOR} * estimated_cost)"
    ),
    # Executions per outcome (worker.contract.outcome): the four add up to total_executions.
    **{
        f"outcome_{outcome}_executions": f"count(*) FILTER (WHERE outcome = '{outcome}')"
        for outcome in OUTCOMES
    },
    # Quality: the mean quality_score is total_quality_score / quality_scored_executions.
    "quality_scored_executions": "count(quality_score)",
    "total_quality_score": "coalesce(sum(quality_score), 0)",
    # Tokens saved, over the executions that give both token counts.
    "token_measured_executions": (
        "count(*) FILTER (WHERE baseline_tokens IS NOT NULL AND actual_tokens IS NOT NULL)"
    ),
    "total_tokens_saved": "coalesce(sum(baseline_tokens - actual_tokens), 0)",
}
# Summary column -> (aggregate, how a batch's value merges with the stored one).
SPANS: Final = {
    "first_executed_at": ("min(executed_at)", "LEAST"),
    "last_executed_at": ("max(executed_at)", "GREATEST"),
}

# The execution columns the aggregates read, with the derived savings.
EXECUTION_COLUMNS: Final = (
    "pattern_id, executed_at, success, execution_time_seconds, estimated_time_seconds, "
    "actual_cost, estimated_cost, outcome, quality_score, actual_tokens, baseline_tokens"
)
WITH_SAVINGS: Final = f"{EXECUTION_COLUMNS}, {TIME_SAVED} AS time_saved, {COST_SAVED} AS cost_saved"


@dataclass(frozen=True, slots=True)
class Table:
    """A summary table: its name, its key columns, and the columns it aggregates."""

    name: str
    keys: tuple[str, ...]
    key_expressions: tuple[str, ...]
    spans: bool

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.keys, *SUMS, *(SPANS if self.spans else ()))

    def aggregate_select(self, source: str) -> str:
        """SELECT of this table's rows aggregated from `source` (rows WITH_SAVINGS), key-ordered.

        The order matters: upserts touch rows in key order, so concurrent workers cannot deadlock.
        """
        keys = ", ".join(
            f"{expr} AS {key}" for key, expr in zip(self.keys, self.key_expressions, strict=True)
        )
        sums = ", ".join(f"{agg} AS {column}" for column, agg in SUMS.items())
        spans = "".join(f", {agg} AS {column}" for column, (agg, _) in SPANS.items())
        positions = ", ".join(str(index + 1) for index in range(len(self.keys)))
        return (
            f"SELECT {keys}, {sums}{spans if self.spans else ''} FROM {source} "
            f"GROUP BY {positions} ORDER BY {positions}"
        )

    def increment_sql(self, source: str) -> str:
        """Upsert adding the aggregate of `source` to the stored rows."""
        updates = [f"{column} = t.{column} + excluded.{column}" for column in SUMS]
        if self.spans:
            updates += [
                f"{column} = {merge}(t.{column}, excluded.{column})"
                for column, (_, merge) in SPANS.items()
            ]
        updates.append("last_updated = now()")
        return (
            f"INSERT INTO {self.name} AS t ({', '.join(self.columns)}) "
            f"{self.aggregate_select(source)} "
            f"ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET {', '.join(updates)}"
        )

    def recompute_sql(self) -> str:
        """This table's rows recomputed from every stored execution, plus the aggregates of
        the executions retention deleted (pattern_roi_archive)."""
        keys = ", ".join(self.keys)
        sums = ", ".join(f"sum({column}) AS {column}" for column in SUMS)
        spans = ", min(first_executed_at) AS first_executed_at, max(last_executed_at)"
        spans += " AS last_executed_at"
        return (
            f"SELECT {keys}, {sums}{spans if self.spans else ''} FROM ({_PARTIALS}) AS p "
            f"GROUP BY {keys} ORDER BY {keys}"
        )


SUMMARY: Final = Table("pattern_roi_summary", ("pattern_id",), ("pattern_id",), spans=True)
# What retention deleted, per pattern and UTC day: counted by the summaries, recomputed from here.
ARCHIVE: Final = Table(
    "pattern_roi_archive", ("pattern_id", "day"), ("pattern_id", DAY), spans=True
)
_PARTIALS: Final = (
    f"({ARCHIVE.aggregate_select(f'(SELECT {WITH_SAVINGS} FROM pattern_executions) AS e')}) "
    f"UNION ALL (SELECT {', '.join(ARCHIVE.columns)} FROM pattern_roi_archive)"
)
DAILY: Final = Table("pattern_roi_daily", ("pattern_id", "day"), ("pattern_id", DAY), spans=False)
TABLES: Final = (SUMMARY, DAILY)


@dataclass(frozen=True, slots=True)
class Drift:
    """A summary row that differs from the recompute: stored and expected values (None: absent)."""

    table: Table
    key: tuple[Any, ...]
    stored: dict[str, Any] | None
    expected: dict[str, Any] | None

    def describe(self) -> list[str]:
        """The row and, indented, each column that differs: readable in a terminal."""
        where = " ".join(f"{k}={v}" for k, v in zip(self.table.keys, self.key, strict=True))
        head = f"{self.table.name} {where}"
        if self.stored is None:
            return [f"{head}: missing (the executions give {_values(self.expected)})"]
        if self.expected is None:
            return [f"{head}: present but no execution has this key ({_values(self.stored)})"]
        return [head] + [
            f"  {column}: stored {self.stored[column]}, recomputed {value}"
            for column, value in self.expected.items()
            if self.stored[column] != value
        ]


def _values(row: dict[str, Any] | None) -> str:
    return ", ".join(f"{column} {value}" for column, value in (row or {}).items())


def find_drift(conn: psycopg.Connection[Any]) -> list[Drift]:
    """Compares both summary tables with a full recompute, in one snapshot. Empty: no drift."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _compare(cur)


def rebuild(
    conn: psycopg.Connection[Any], lock_timeout_ms: int = REBUILD_LOCK_TIMEOUT_MS
) -> list[Drift]:
    """Replaces both summary tables with a full recompute; returns the rows that were wrong.

    One transaction, safe while workers run:
    1. lock both tables in EXCLUSIVE mode. A worker's batch increments them in the statement
       that inserts its executions, so every batch that stored executions holds a lock on them
       until it commits: the lock waits for those batches, and later batches wait for the
       rebuild (readers do not wait);
    2. compare with the recompute, which, at READ COMMITTED, sees every batch committed before
       the lock was granted;
    3. replace the rows. Batches that waited then add their own rows to the rebuilt sums.
    Raises SummariesBusyError when the lock is not granted within `lock_timeout_ms`.
    `conn` must not be inside a transaction: the rebuild commits on its own.
    """
    if conn.info.transaction_status is not TransactionStatus.IDLE:
        raise ValueError("rebuild needs a connection outside any transaction")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        if not lock_summary_tables(cur, "EXCLUSIVE", lock_timeout_ms):
            raise SummariesBusyError(
                f"could not lock the summary tables within {lock_timeout_ms / 1000:g} s: a long "
                "transaction holds them (see pg_stat_activity); nothing was changed, try again"
            )
        drift = _compare(cur)
        for table in TABLES:
            cur.execute(f"DELETE FROM {table.name}")
            cur.execute(
                f"INSERT INTO {table.name} ({', '.join(table.columns)}) {table.recompute_sql()}"
            )
    return drift


def lock_summary_tables(
    cur: psycopg.Cursor[Any] | psycopg.Connection[Any], mode: str, timeout_ms: int
) -> bool:
    """Locks both summary tables in `mode` until the transaction ends; False (and the
    transaction aborted) when not granted within `timeout_ms`. Queued behind a long
    transaction, a lock request would hold up every batch too: hence the timeout."""
    cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{timeout_ms}ms",))
    try:
        cur.execute(f"LOCK TABLE {', '.join(t.name for t in TABLES)} IN {mode} MODE")
    except psycopg.errors.LockNotAvailable:
        return False
    cur.execute("SELECT set_config('lock_timeout', '0', true)")
    return True


def _compare(cur: psycopg.Cursor[Any]) -> list[Drift]:
    drift: list[Drift] = []
    for table in TABLES:
        columns = ", ".join(table.columns)
        order = ", ".join(table.keys)
        stored = _rows(cur, f"SELECT {columns} FROM {table.name} ORDER BY {order}", table)
        expected = _rows(cur, table.recompute_sql(), table)
        for key in sorted(stored.keys() | expected.keys()):
            if stored.get(key) != expected.get(key):
                drift.append(Drift(table, key, stored.get(key), expected.get(key)))
    return drift


def _rows(cur: psycopg.Cursor[Any], query: str, table: Table) -> dict[tuple[Any, ...], Any]:
    cur.execute(query)  # built from the constants above, never from input
    width = len(table.keys)
    return {
        tuple(row[:width]): dict(zip(table.columns[width:], row[width:], strict=True))
        for row in cur.fetchall()
    }
