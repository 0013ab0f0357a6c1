"""Executions per time bucket per pattern, counted from the stored executions (pattern_executions).

Buckets are UTC hours, days or weeks (weeks start on Monday, as PostgreSQL's date_trunc has
them). The range is whole buckets: from the start of the bucket holding `now - time_range` to
the end of the bucket holding `now`, so every bucket but the last (still running) is complete,
and every bucket of the range is in the answer, with zeros where nothing ran: a continuous
series a dashboard can plot as it is. Patterns without executions in the range are left out.
Executions deleted by `roi-worker retention` are not counted (the summaries still have them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, get_args

import psycopg

TimeRange = Literal["1d", "7d", "30d", "90d"]
GroupBy = Literal["hour", "day", "week"]
TIME_RANGES: Final[tuple[TimeRange, ...]] = get_args(TimeRange)
GROUP_BYS: Final[tuple[GroupBy, ...]] = get_args(GroupBy)

RANGES: Final[dict[TimeRange, timedelta]] = {
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
STEPS: Final[dict[GroupBy, timedelta]] = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
# Buckets per series at most: 30 days of hours (721) fit, 90 days of hours (2,161) do not; an
# answer for 500 patterns stays a few MB.
MAX_BUCKETS: Final = 1000

# executed_at AT TIME ZONE 'UTC' is the UTC wall-clock time, so the buckets do not depend on the
# session's TimeZone; date_trunc('week', ...) starts weeks on Monday.
_COUNTS: Final = """
SELECT pattern_id,
       date_trunc(%(unit)s, executed_at AT TIME ZONE 'UTC') AS bucket,
       count(*),
       count(*) FILTER (WHERE success)
FROM pattern_executions
WHERE executed_at >= %(start)s AND executed_at < %(end)s
  AND (%(pattern)s::text IS NULL OR pattern_id = %(pattern)s)
GROUP BY 1, 2
ORDER BY 1, 2
"""


class TooManyBucketsError(ValueError):
    """The range holds more than MAX_BUCKETS buckets of the chosen size."""


@dataclass(frozen=True, slots=True)
class PatternUsage:
    """One pattern's executions and successful executions per bucket, in bucket order."""

    pattern_id: str
    executions: list[int]
    successful_executions: list[int]


@dataclass(frozen=True, slots=True)
class UsageStats:
    """The buckets of [start, end) and every pattern that ran in them, by pattern_id."""

    time_range: TimeRange
    group_by: GroupBy
    start: datetime
    end: datetime
    buckets: list[datetime]
    patterns: list[PatternUsage]


def truncate(moment: datetime, group_by: GroupBy) -> datetime:
    """The start of the UTC bucket holding `moment` (PostgreSQL's date_trunc, in Python)."""
    utc = moment.astimezone(UTC)
    if group_by == "hour":
        return utc.replace(minute=0, second=0, microsecond=0)
    day = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    if group_by == "day":
        return day
    return day - timedelta(days=day.weekday())  # Monday


def bucket_starts(now: datetime, time_range: TimeRange, group_by: GroupBy) -> list[datetime]:
    """The start of every bucket of the range ending with the bucket holding `now`.

    Raises TooManyBucketsError when there would be more than MAX_BUCKETS.
    """
    step = STEPS[group_by]
    first = truncate(now - RANGES[time_range], group_by)
    last = truncate(now, group_by)
    count = (last - first) // step + 1
    if count > MAX_BUCKETS:
        raise TooManyBucketsError(
            f"time_range={time_range} with group_by={group_by} makes {count:,} buckets, more "
            f"than the {MAX_BUCKETS:,} allowed: group by a longer period or shorten the range"
        )
    return [first + i * step for i in range(count)]


def load_usage_stats(
    conn: psycopg.Connection[Any],
    now: datetime,
    time_range: TimeRange,
    group_by: GroupBy,
    *,
    pattern_id: str | None = None,
) -> UsageStats:
    """Counts the executions of every pattern (or only `pattern_id`) per bucket.

    A pattern asked for by name is in the answer even without executions in the range (all
    zeros). Raises TooManyBucketsError like bucket_starts, before any query.
    """
    buckets = bucket_starts(now, time_range, group_by)
    start, end = buckets[0], buckets[-1] + STEPS[group_by]
    index = {bucket: i for i, bucket in enumerate(buckets)}
    rows = conn.execute(
        _COUNTS, {"unit": group_by, "start": start, "end": end, "pattern": pattern_id}
    ).fetchall()
    series: dict[str, PatternUsage] = {}
    if pattern_id is not None:
        series[pattern_id] = _empty(pattern_id, len(buckets))
    for pattern, bucket, executions, successes in rows:
        usage = series.setdefault(pattern, _empty(pattern, len(buckets)))
        position = index[bucket.replace(tzinfo=UTC)]
        usage.executions[position] = int(executions)
        usage.successful_executions[position] = int(successes)
    return UsageStats(
        time_range=time_range,
        group_by=group_by,
        start=start,
        end=end,
        buckets=buckets,
        patterns=[series[p] for p in sorted(series)],
    )


def _empty(pattern_id: str, size: int) -> PatternUsage:
    return PatternUsage(pattern_id, [0] * size, [0] * size)
