"""worker.roi.month_to_date: the spans compared, the exact arithmetic, and how a span is cut into
whole days and raw edges (tests/integration/test_month_to_date.py sums stored executions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.roi.month_to_date import MonthToDate, Span, month_spans, span_parameters

D = Decimal


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def mtd(now: datetime, saved: str, previous: str = "0", trailing: str = "0") -> MonthToDate:
    return MonthToDate(month_spans(now), D(saved), 1, D(previous), 1, D(trailing))


@pytest.mark.parametrize(
    ("now", "previous_start", "previous_end", "days_in_month", "elapsed_days"),
    [
        # Mid-month: the same 14.5 days of February.
        ("2026-03-15T12:00:00", "2026-02-01T00:00:00", "2026-02-15T12:00:00", 31, D("14.5")),
        # 30.5 days into March is past February's end: clamped to it.
        ("2026-03-31T12:00:00", "2026-02-01T00:00:00", "2026-03-01T00:00:00", 31, D("30.5")),
        # A leap February has 29 days; January's same span.
        ("2028-02-29T00:00:00", "2028-01-01T00:00:00", "2028-01-29T00:00:00", 29, D(28)),
        ("2026-02-10T00:00:00", "2026-01-01T00:00:00", "2026-01-10T00:00:00", 28, D(9)),
        # January compares with December of the year before.
        ("2027-01-03T00:00:00", "2026-12-01T00:00:00", "2026-12-03T00:00:00", 31, D(2)),
        # The first hours of a month: at least one day elapsed; previous has the same 6 hours.
        ("2026-04-01T06:00:00", "2026-03-01T00:00:00", "2026-03-01T06:00:00", 30, D(1)),
        # Exactly midnight on the first: nothing elapsed, an empty previous span.
        ("2026-04-01T00:00:00", "2026-03-01T00:00:00", "2026-03-01T00:00:00", 30, D(1)),
    ],
)
def test_month_spans(
    now: str, previous_start: str, previous_end: str, days_in_month: int, elapsed_days: Decimal
) -> None:
    spans = month_spans(at(now))
    assert spans.current == Span(at(now).replace(day=1, hour=0), at(now))
    assert spans.previous == Span(at(previous_start), at(previous_end))
    assert spans.trailing == Span(at(now) - timedelta(days=30), at(now))
    assert spans.days_in_month == days_in_month
    assert spans.elapsed_days == elapsed_days


def test_now_in_another_zone_is_read_as_utc() -> None:
    local = datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))  # Feb 28, 23:00 UTC
    assert month_spans(local).current.start == at("2026-02-01T00:00:00")


def test_projection_and_change() -> None:
    """15 days into a 30-day month: $150 saved, $100 the same days of last month."""
    figures = mtd(at("2026-04-16T00:00:00"), "150.00", previous="100.00", trailing="300")
    assert figures.change_percentage == D(50)
    assert figures.projected_month_end_usd == D(300)  # 150 / 15 * 30
    assert figures.projected_annual_usd == D(3650)  # 300 / 30 * 365


def test_fractional_elapsed_days_project_exactly() -> None:
    """12 hours into the 3rd of March: 2.5 days, $10 saved, $124 by the 31st."""
    figures = mtd(at("2026-03-03T12:00:00"), "10")
    assert figures.projected_month_end_usd == D(124)


def test_first_day_of_the_month_projects_from_one_day() -> None:
    figures = mtd(at("2026-02-01T03:00:00"), "7")
    assert figures.projected_month_end_usd == D(7 * 28)


def test_change_against_nothing_is_none_and_against_a_loss_uses_its_size() -> None:
    assert mtd(at("2026-03-10T00:00:00"), "50", previous="0").change_percentage is None
    assert mtd(at("2026-03-10T00:00:00"), "50", previous="-100").change_percentage == D(150)
    assert mtd(at("2026-03-10T00:00:00"), "-50", previous="100").change_percentage == D(-150)


def test_negative_savings_project_negative() -> None:
    figures = mtd(at("2026-04-11T00:00:00"), "-20", trailing="-60")
    assert figures.projected_month_end_usd == D(-60)
    assert figures.projected_annual_usd == D(-730)


instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 3, 1), timezones=st.just(UTC)
)


def in_parts(moment: datetime, span: Span) -> int:
    """How many times `_SPAN_SUMS` counts an execution at `moment`: once per day of the rollups
    that holds it, plus or minus once per raw range that holds it."""
    cut = span_parameters(span)
    count = int(cut["first_day"] <= moment.date() < cut["end_day"])
    for n in (1, 2):
        if cut[f"a{n}"] <= moment < cut[f"b{n}"]:
            count += cut[f"k{n}"]
    return count


def raw_hours(span: Span) -> timedelta:
    """How much time of raw executions the sum reads."""
    cut = span_parameters(span)
    return sum((cut[f"b{n}"] - cut[f"a{n}"] for n in (1, 2)), timedelta())


@given(instants, instants, instants)
def test_the_parts_of_a_span_hold_each_instant_of_it_once(
    a: datetime, b: datetime, moment: datetime
) -> None:
    span = Span(min(a, b), max(a, b))
    assert in_parts(moment, span) == int(span.start <= moment < span.end)
    assert raw_hours(span) <= timedelta(hours=24)  # at most 12 hours at each edge


def test_a_span_ending_now_late_in_the_day_reads_only_what_follows_now() -> None:
    now = at("2026-03-10T20:00:00")
    cut = span_parameters(month_spans(now).current)
    assert (cut["first_day"], cut["end_day"]) == (
        now.date().replace(day=1),
        now.date() + timedelta(days=1),
    )
    assert (cut["a1"], cut["b1"], cut["k1"]) == (now, at("2026-03-11T00:00:00"), -1)
    assert cut["a2"] == cut["b2"]  # nothing else


@pytest.mark.parametrize(
    "span",
    [
        Span(at("2026-03-01T00:00:00"), at("2026-03-01T00:00:00")),  # empty
        Span(at("2026-03-01T00:00:00"), at("2026-03-03T00:00:00")),  # whole days only
        Span(at("2026-03-01T10:00:00"), at("2026-03-01T11:00:00")),  # inside one day
        Span(at("2026-03-01T10:00:00"), at("2026-03-02T00:00:00")),  # to a midnight
        Span(at("2026-03-01T01:00:00"), at("2026-03-01T23:00:00")),  # most of one day
        Span(at("2026-03-01T01:00:00"), at("2026-03-05T23:00:00")),  # complements both edges
        Span(at("2026-03-01T13:00:00"), at("2026-03-05T11:00:00")),  # raw at both edges
        Span(at("2026-03-01T00:00:00"), at("2026-03-02T00:00:00")),  # exactly one day
    ],
)
def test_span_boundaries(span: Span) -> None:
    edges = (span.start, span.end, span.start - timedelta(microseconds=1))
    for moment in (*edges, span.end - timedelta(microseconds=1), span.start.replace(hour=0)):
        assert in_parts(moment, span) == int(span.start <= moment < span.end)
