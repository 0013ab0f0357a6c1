"""Month to date and its projection (docs/roi-methodology.md, "Month to date"): what every
pattern saved, net, since the start of the current UTC calendar month, against the same elapsed
span of the previous month, and where that leads by the month's end and over a year.

The arithmetic (`MonthToDate`, `month_spans`) is pure and exact. `read_month_to_date` sums each
span to the instant at a cost that does not grow with the number of executions: the whole UTC
days inside a span from pattern_roi_daily, only the partial days at its edges from
pattern_executions (by executed_at, indexed). A partial day older than retention's horizon has
no raw executions left, so that edge is then counted as none or all of its day: the figures
are exact while ROI_RETENTION_DAYS is unset or above 62 (the start of the previous month's span).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

import psycopg

from .methodology import EXACT, ZERO, _exact_quotient
from .summaries import COST_SAVED

SECONDS_PER_DAY: Final = 86_400
TRAILING_DAYS: Final = 30
DAYS_PER_YEAR: Final = 365


@dataclass(frozen=True, slots=True)
class Span:
    """The instants [start, end), UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class MonthSpans:
    """What month to date compares: this month so far, the same elapsed span of the previous
    month (clamped to its end), and the trailing 30 days the annual projection uses."""

    now: datetime
    current: Span
    previous: Span
    trailing: Span

    @property
    def days_in_month(self) -> int:
        start = self.current.start
        return calendar.monthrange(start.year, start.month)[1]

    @property
    def elapsed_days(self) -> Decimal:
        """Days since the month began, fractional (seconds / 86400), at least 1."""
        elapsed = self.now - self.current.start
        seconds = Decimal(elapsed.days * SECONDS_PER_DAY + elapsed.seconds)
        seconds += Decimal(elapsed.microseconds) / 1_000_000
        return max(Decimal(1), _exact_quotient(seconds, Decimal(SECONDS_PER_DAY)))


def month_spans(now: datetime) -> MonthSpans:
    """The spans month to date compares at `now` (an aware datetime, read as UTC)."""
    now = now.astimezone(UTC)
    start = datetime.combine(now.date().replace(day=1), time(), UTC)
    previous_start = datetime.combine(
        (start - timedelta(days=1)).date().replace(day=1), time(), UTC
    )
    previous_end = min(previous_start + (now - start), start)
    return MonthSpans(
        now=now,
        current=Span(start, now),
        previous=Span(previous_start, previous_end),
        trailing=Span(now - timedelta(days=TRAILING_DAYS), now),
    )


@dataclass(frozen=True, slots=True)
class MonthToDate:
    """Net cost saved this month so far and the figures derived from it, exact."""

    spans: MonthSpans
    cost_saved_usd: Decimal
    executions: int
    previous_cost_saved_usd: Decimal
    previous_executions: int
    trailing_cost_saved_usd: Decimal  # the trailing 30 days, for the annual projection

    @property
    def change_percentage(self) -> Decimal | None:
        """100 * (MTD - previous) / |previous|; None when the previous span saved exactly 0."""
        if not self.previous_cost_saved_usd:
            return None
        change = EXACT.subtract(self.cost_saved_usd, self.previous_cost_saved_usd)
        return _exact_quotient(100 * change, abs(self.previous_cost_saved_usd))

    @property
    def projected_month_end_usd(self) -> Decimal:
        """MTD / elapsed days * days in the month."""
        per_day = _exact_quotient(self.cost_saved_usd, self.spans.elapsed_days)
        return EXACT.multiply(per_day, self.spans.days_in_month)

    @property
    def projected_annual_usd(self) -> Decimal:
        """Net savings of the trailing 30 days / 30 * 365."""
        per_day = _exact_quotient(self.trailing_cost_saved_usd, Decimal(TRAILING_DAYS))
        return EXACT.multiply(per_day, DAYS_PER_YEAR)


# Net cost saved and executions in [start, end): the days [first_day, end_day) from the daily
# rollups, plus (k = 1) or minus (k = -1) the raw executions of two ranges that cut the partial
# days at the edges (see `span_parameters`).
_SPAN_SUMS: Final = f"""
SELECT coalesce(sum(c), 0), coalesce(sum(n), 0) FROM (
    SELECT total_cost_saved_usd AS c, total_executions AS n FROM pattern_roi_daily
    WHERE day >= %(first_day)s AND day < %(end_day)s
    UNION ALL
    SELECT %(k1)s::int * ({COST_SAVED}), %(k1)s::int FROM pattern_executions
    WHERE executed_at >= %(a1)s AND executed_at < %(b1)s
    UNION ALL
    SELECT %(k2)s::int * ({COST_SAVED}), %(k2)s::int FROM pattern_executions
    WHERE executed_at >= %(a2)s AND executed_at < %(b2)s
) AS parts
"""
HALF_DAY: Final = timedelta(hours=12)
ONE_DAY: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RawRange:
    """Raw executions in [start, end), added (sign 1) or taken away (sign -1)."""

    start: datetime
    end: datetime
    sign: int


def span_parameters(span: Span) -> dict[str, Any]:
    """How `_SPAN_SUMS` sums a span: whole days from the rollups and at most two raw ranges.

    A partial day at an edge is read from whichever side of its cut is shorter, at most 12
    hours of raw executions: its part in the span directly (added), or its whole day from the
    rollups minus the part outside the span (taken away). So a span ending now costs the
    executions dated after now when the day is more than half over, and nothing more.
    """
    days, ranges = _cut(span)
    padded = [*ranges, *(RawRange(span.start, span.start, 1) for _ in range(2 - len(ranges)))]
    parameters: dict[str, Any] = {"first_day": days[0], "end_day": days[1]}
    for n, raw in enumerate(padded, start=1):
        parameters |= {f"a{n}": raw.start, f"b{n}": raw.end, f"k{n}": raw.sign}
    return parameters


def _cut(span: Span) -> tuple[tuple[date, date], list[RawRange]]:
    start, end = span.start, span.end
    first, last = start.date(), end.date()
    if end <= start:
        return (first, first), []
    start_midnight, end_midnight = _midnight(first), _midnight(last)
    if end - start_midnight <= ONE_DAY:  # within one day (or up to its end)
        if end - start <= HALF_DAY:
            return (first, first), [RawRange(start, end, 1)]
        return (first, first + timedelta(days=1)), [
            RawRange(start_midnight, start, -1),
            RawRange(end, start_midnight + ONE_DAY, -1),
        ]
    ranges = []
    if start == start_midnight:
        days_from = first
    elif start_midnight + ONE_DAY - start <= HALF_DAY:
        days_from = first + timedelta(days=1)
        ranges.append(RawRange(start, start_midnight + ONE_DAY, 1))
    else:
        days_from = first
        ranges.append(RawRange(start_midnight, start, -1))
    if end == end_midnight:
        days_to = last
    elif end - end_midnight <= HALF_DAY:
        days_to = last
        ranges.append(RawRange(end_midnight, end, 1))
    else:
        days_to = last + timedelta(days=1)
        ranges.append(RawRange(end, end_midnight + ONE_DAY, -1))
    return (days_from, days_to), ranges


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def sum_span(cur: psycopg.Cursor[Any], span: Span) -> tuple[Decimal, int]:
    """Net cost saved and executions whose executed_at is in the span, exact to the instant."""
    row = cur.execute(_SPAN_SUMS, span_parameters(span)).fetchone()
    if row is None:
        return ZERO, 0
    return Decimal(row[0]), int(row[1])


def read_month_to_date(cur: psycopg.Cursor[Any], now: datetime) -> MonthToDate:
    """Month to date at `now` (injectable for tests), read through `cur` (use a `snapshot`
    cursor so the three sums agree)."""
    spans = month_spans(now)
    saved, executions = sum_span(cur, spans.current)
    previous, previous_executions = sum_span(cur, spans.previous)
    trailing, _ = sum_span(cur, spans.trailing)
    return MonthToDate(spans, saved, executions, previous, previous_executions, trailing)
