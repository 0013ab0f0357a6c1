"""Per-pattern analytics read from PostgreSQL: every figure of `roi-worker report`.

Counts and sums come from the summary tables (all time: pattern_roi_summary; a window:
pattern_roi_daily), which cost the same whatever the number of executions; only the
execution-time percentiles read (and sort) pattern_executions. Everything is read in one
read-only REPEATABLE READ transaction, so the figures are consistent with each other while
workers keep writing. The figures themselves are derived by worker.roi.methodology.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import psycopg

from .figures import NAME_OF_COLUMN
from .methodology import (
    PERFORMING,
    UNDERPERFORMING,
    DailyQualitySums,
    DailySums,
    RateChange,
    Rating,
    Totals,
    Trend,
    Window,
    quality_change,
    quality_trend,
    ranking_key,
    rate,
    shortfall_key,
    success_rate_change,
    trend,
    wilson_lower_bound,
)
from .summaries import SUMS

_NO_DAYS: Final = DailySums(0, 0, 0, 0, 0, 0, 0)
_NO_SCORED_DAYS: Final = DailyQualitySums.of(())
PERCENTILES: Final = (Decimal("0.5"), Decimal("0.95"), Decimal("0.99"))

# The summary columns that hold whole numbers (counts, and the tokens saved), read as int.
_INTEGERS: Final = frozenset(
    {"total_executions", "total_tokens_saved"} | {c for c in SUMS if c.endswith("_executions")}
)
_SUMS: Final = ", ".join(SUMS)
_WINDOW_SUMS: Final = ", ".join(f"sum({column})" for column in SUMS)
_PATTERN: Final = "(%(pattern)s::text IS NULL OR pattern_id = %(pattern)s)"

_ALL_TIME: Final = f"SELECT pattern_id, {_SUMS} FROM pattern_roi_summary WHERE {_PATTERN}"
_BETWEEN_DAYS: Final = f"""
SELECT pattern_id, {_WINDOW_SUMS} FROM pattern_roi_daily
WHERE {_PATTERN} AND day >= %(since)s AND (%(until)s::date IS NULL OR day <= %(until)s)
GROUP BY pattern_id
"""
_SPANS: Final = (
    f"SELECT pattern_id, first_executed_at, last_executed_at FROM pattern_roi_summary "
    f"WHERE {_PATTERN}"
)
# The sums the trend's line is fitted from (methodology.DailySums), one row per pattern: x is the
# day's number from the pattern's first day with executions in the window.
_DAILY_SUMS: Final = f"""
SELECT pattern_id, count(*), sum(n), sum(s), sum(n * x), sum(n * x * x), sum(s * x), max(x)
FROM (
    SELECT pattern_id, total_executions AS n, successful_executions AS s,
           day - min(day) OVER (PARTITION BY pattern_id) AS x
    FROM pattern_roi_daily
    WHERE {_PATTERN} AND (%(since)s::date IS NULL OR day >= %(since)s) AND total_executions > 0
) AS days
GROUP BY pattern_id
"""
# The same for the daily mean quality score (methodology.DailyQualitySums): weights are the
# days' scored executions, x counts from the pattern's first day with one in the window.
_DAILY_QUALITY_SUMS: Final = f"""
SELECT pattern_id, count(*), sum(n), sum(q), sum(n * x), sum(n * x * x), sum(q * x), max(x)
FROM (
    SELECT pattern_id, quality_scored_executions AS n, total_quality_score AS q,
           day - min(day) OVER (PARTITION BY pattern_id) AS x
    FROM pattern_roi_daily
    WHERE {_PATTERN} AND (%(since)s::date IS NULL OR day >= %(since)s)
      AND quality_scored_executions > 0
) AS days
GROUP BY pattern_id
"""
# percentile_disc: the smallest stored value at or above each fraction of the sorted times, an
# exact value that was really observed (no interpolation).
_PERCENTILES: Final = f"""
SELECT pattern_id,
       percentile_disc(%(fractions)s::float8[]) WITHIN GROUP (ORDER BY execution_time_seconds)
FROM pattern_executions
WHERE {_PATTERN}
  AND (%(since)s::date IS NULL OR executed_at >= (%(since)s::date)::timestamp AT TIME ZONE 'UTC')
GROUP BY pattern_id
"""
_EXISTS: Final = "SELECT EXISTS (SELECT 1 FROM pattern_roi_summary WHERE pattern_id = %s)"


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Execution time in seconds at the 50th, 95th and 99th percentile."""

    p50: Decimal
    p95: Decimal
    p99: Decimal


@dataclass(frozen=True, slots=True)
class PatternAnalytics:
    """One pattern in the window: its totals, what they mean, and how they moved.

    `previous` is the previous window of the same length (None for all time). The percentiles
    are None when no raw execution of the window is stored (retention may have deleted them).
    The first and last execution times are over all time.
    """

    pattern_id: str
    totals: Totals
    previous: Totals | None
    rating: Rating
    wilson_lower_bound: Decimal | None
    trend: Trend
    success_rate_change: RateChange | None
    execution_time: Percentiles | None
    first_executed_at: datetime | None
    last_executed_at: datetime | None
    quality_trend: Trend = Trend.STABLE  # of the daily mean quality score, like `trend`
    quality_change: RateChange | None = None


@dataclass(frozen=True, slots=True)
class Analytics:
    """Every pattern with executions in the window or the previous one, by pattern_id."""

    generated_at: datetime
    window: Window
    min_executions: int
    patterns: tuple[PatternAnalytics, ...]

    @property
    def tracked(self) -> tuple[PatternAnalytics, ...]:
        """The patterns with executions in the window."""
        return tuple(p for p in self.patterns if p.totals.executions)

    @property
    def overall(self) -> Totals:
        return sum((p.totals for p in self.patterns), Totals())

    @property
    def overall_previous(self) -> Totals | None:
        if self.window.previous is None:
            return None
        return sum((p.previous or Totals() for p in self.patterns), Totals())

    def top_performers(self, limit: int) -> list[PatternAnalytics]:
        """The highest ROI first, among patterns rated acceptable or better."""
        rated = [p for p in self.patterns if p.rating in PERFORMING]
        return sorted(rated, key=lambda p: ranking_key(p.pattern_id, p.totals))[:limit]

    def underperformers(self, limit: int) -> list[PatternAnalytics]:
        """Patterns rated poor or failed, the lowest ROI first."""
        weak = [p for p in self.patterns if p.rating in UNDERPERFORMING]
        return sorted(weak, key=lambda p: shortfall_key(p.pattern_id, p.totals))[:limit]

    def find(self, pattern_id: str) -> PatternAnalytics | None:
        return next((p for p in self.patterns if p.pattern_id == pattern_id), None)


def pattern_exists(conn: psycopg.Connection[Any], pattern_id: str) -> bool:
    """Whether any execution of the pattern was ever stored."""
    row = conn.execute(_EXISTS, (pattern_id,)).fetchone()
    return bool(row and row[0])


@contextlib.contextmanager
def snapshot(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Cursor[Any]]:
    """A cursor in a read-only REPEATABLE READ transaction: every read through it sees one
    consistent state of the database, whatever workers commit meanwhile."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield cur


def load_analytics(
    conn: psycopg.Connection[Any],
    window: Window,
    min_executions: int,
    generated_at: datetime,
    *,
    pattern_id: str | None = None,
    percentiles: bool = True,
) -> Analytics:
    """The analytics of every pattern (or only `pattern_id`) for `window`, from one snapshot.

    `percentiles=False` skips the execution-time percentiles, the one figure that reads (and
    sorts) the raw executions rather than the summaries.
    """
    with snapshot(conn) as cur:
        return read_analytics(
            cur,
            window,
            min_executions,
            generated_at,
            pattern_id=pattern_id,
            percentiles=percentiles,
        )


def read_analytics(
    cur: psycopg.Cursor[Any],
    window: Window,
    min_executions: int,
    generated_at: datetime,
    *,
    pattern_id: str | None = None,
    percentiles: bool = True,
) -> Analytics:
    """load_analytics through a cursor of a `snapshot`, for callers that read more from it."""
    previous = window.previous
    params: dict[str, Any] = {
        "pattern": pattern_id,
        "since": window.since,
        "until": None,
        "fractions": list(PERCENTILES),
    }
    if window.since is None:
        current = _totals_by_pattern(cur, _ALL_TIME, params)
    else:
        current = _totals_by_pattern(cur, _BETWEEN_DAYS, params)
    before: dict[str, Totals] = {}
    if previous is not None:
        before = _totals_by_pattern(
            cur, _BETWEEN_DAYS, params | {"since": previous.since, "until": previous.until}
        )
    spans = {row[0]: (row[1], row[2]) for row in cur.execute(_SPANS, params)}
    daily = {
        row[0]: DailySums(*(int(value) for value in row[1:]))
        for row in cur.execute(_DAILY_SUMS, params)
    }
    quality = {row[0]: _quality_sums(row[1:]) for row in cur.execute(_DAILY_QUALITY_SUMS, params)}
    timings = {}
    if percentiles:
        rows = cur.execute(_PERCENTILES, params)
        timings = {pattern: Percentiles(*values) for pattern, values in rows}
    patterns = []
    # A pattern asked for by name is shown even without executions in either window.
    named = spans.keys() if pattern_id is not None else set()
    for pattern in sorted(current.keys() | before.keys() | named):
        totals = current.get(pattern, Totals())
        first, last = spans.get(pattern, (None, None))
        days = daily.get(pattern, _NO_DAYS)
        scored_days = quality.get(pattern, _NO_SCORED_DAYS)
        patterns.append(
            PatternAnalytics(
                pattern_id=pattern,
                totals=totals,
                previous=None if previous is None else before.get(pattern, Totals()),
                rating=rate(totals, min_executions),
                wilson_lower_bound=wilson_lower_bound(
                    totals.successful_executions, totals.executions
                ),
                trend=trend(days, min_executions),
                success_rate_change=success_rate_change(days),
                execution_time=timings.get(pattern),
                first_executed_at=first,
                last_executed_at=last,
                quality_trend=quality_trend(scored_days, min_executions),
                quality_change=quality_change(scored_days),
            )
        )
    return Analytics(generated_at, window, min_executions, tuple(patterns))


def _quality_sums(values: Sequence[Any]) -> DailyQualitySums:
    days, scored, score_sum, day_sum, day_square_sum, score_day_sum, span = values
    return DailyQualitySums(
        int(days),
        int(scored),
        Decimal(score_sum),
        int(day_sum),
        int(day_square_sum),
        Decimal(score_day_sum),
        int(span),
    )


def totals_from_row(values: Sequence[Any]) -> Totals:
    """Totals from the values of the summary columns, in SUMS order (as the queries select)."""
    converted: dict[str, Any] = {
        NAME_OF_COLUMN[column]: int(value) if column in _INTEGERS else Decimal(value)
        for column, value in zip(SUMS, values, strict=True)
    }
    return Totals(**converted)


def _totals_by_pattern(
    cur: psycopg.Cursor[Any], query: str, params: dict[str, Any]
) -> dict[str, Totals]:
    cur.execute(query, params)
    return {row[0]: totals_from_row(row[1:]) for row in cur.fetchall()}
