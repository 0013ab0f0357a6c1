"""Savings per UTC day, week (Monday to Sunday) or calendar month, every pattern together, with
running totals: the series a savings chart draws (GET /api/roi-tracking/savings).

Read from the daily rollups (pattern_roi_daily), which keep every day, also those whose raw
executions retention deleted: one grouped scan of at most MAX_PERIODS periods' days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final, Literal

import psycopg

from .analytics import totals_from_row
from .methodology import Totals
from .summaries import SUMS

Period = Literal["day", "week", "month"]
PERIODS: Final[tuple[Period, ...]] = ("day", "week", "month")
MAX_PERIODS: Final = 400
# How far back a series starts when not told: the current month by day (seed 002's default),
# the last 12 weeks, the last 12 months.
DEFAULT_PERIODS: Final = {"day": None, "week": 12, "month": 12}

_SUMS_BY_PERIOD: Final = f"""
SELECT date_trunc(%(period)s, day::timestamp)::date, {", ".join(f"sum({c})" for c in SUMS)}
FROM pattern_roi_daily
WHERE day >= %(first)s AND day <= %(last)s
    AND (%(pattern_id)s::text IS NULL OR pattern_id = %(pattern_id)s::text)
GROUP BY 1
"""


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    """One period's totals; `first_day`..`last_day` (inclusive) are its days inside the series,
    so the first and last period can be shorter than a whole week or month."""

    first_day: date
    last_day: date
    totals: Totals


def period_start(day: date, period: Period) -> date:
    """The first day of the period holding `day`."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def next_period(start: date, period: Period) -> date:
    """The first day of the period after the one starting on `start`."""
    if period == "week":
        return start + timedelta(days=7)
    if period == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def default_first_day(last: date, period: Period) -> date:
    """Where a series ending on `last` starts when not told (DEFAULT_PERIODS)."""
    count = DEFAULT_PERIODS[period]
    if count is None:
        return last.replace(day=1)
    start = period_start(last, period)
    for _ in range(count - 1):
        start = period_start(start - timedelta(days=1), period)
    return start


def periods_between(first: date, last: date, period: Period) -> list[tuple[date, date]]:
    """The periods from the one holding `first` to the one holding `last`, each cut to
    [first, last]: (first day, last day). Raises ValueError when `first` is after `last` or
    there would be more than MAX_PERIODS."""
    if first > last:
        raise ValueError(f"from ({first}) is after to ({last})")
    found: list[tuple[date, date]] = []
    start = period_start(first, period)
    while start <= last:
        if len(found) == MAX_PERIODS:
            raise ValueError(
                f"{first} to {last} is more than {MAX_PERIODS} {period}s: "
                "ask for a shorter range or a longer period"
            )
        following = next_period(start, period)
        found.append((max(start, first), min(following - timedelta(days=1), last)))
        start = following
    return found


def read_savings(
    cur: psycopg.Cursor[Any],
    period: Period,
    first: date,
    last: date,
    *,
    pattern_id: str | None = None,
) -> list[PeriodTotals]:
    """Every period of [first, last], with nothing-saved periods included (zeros): of every
    pattern together, or of `pattern_id` only (a pattern page's history)."""
    periods = periods_between(first, last, period)
    parameters = {"period": period, "first": first, "last": last, "pattern_id": pattern_id}
    cur.execute(_SUMS_BY_PERIOD, parameters)
    found = {row[0]: totals_from_row(row[1:]) for row in cur.fetchall()}
    return [
        PeriodTotals(start, end, found.get(period_start(start, period), Totals()))
        for start, end in periods
    ]
