"""The executive summary (seed 002's one page for leadership; docs/reports.md, "Executive
summary"): this month's savings and their projection, the month's productivity, and the best
and worst patterns with what to do about them.

Every figure is one the report already computes, taken from the report document's models
(worker.roi.report_document): the savings block is the summary's `month_to_date`, productivity is
`overall` of the window from the first of the month, and the patterns are the report's top
performers and underperformers of that window, as `roi-worker report --since YYYY-MM-01 --format
json` shows them. This module only chooses and names them; worker.roi.executive_render and
worker.roi.executive_pdf show them. The JSON form is published as
schemas/roi-executive-summary.v1.json; like the report, decimals are strings.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final, Literal, Self

import psycopg
from pydantic import BaseModel, ConfigDict, Field

from .analytics import Analytics, read_analytics, snapshot
from .formatting import round_half_up
from .methodology import Rating, Window
from .month_to_date import MonthToDate, read_month_to_date
from .report_document import PLACES, Dec, MonthToDateReport, PatternReport, build_document

SUMMARY_VERSION: Final = 1
# The periods a summary covers: the current UTC calendar month to date, the span month to date
# (worker.roi.month_to_date) compares and projects.
Period = Literal["month"]
PERIODS: Final[tuple[Period, ...]] = ("month",)
LISTED: Final = 3  # patterns in each of the best and worst lists: what fits on one page
SECONDS_PER_HOUR: Final = Decimal(3600)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SummaryPeriod(_Model):
    """What the summary covers: the UTC calendar month from its start to `end` (now)."""

    name: Period
    label: str = Field(description="the month in words, e.g. December 2026")
    start: datetime = Field(description="the first instant of the month, UTC")
    end: datetime = Field(description="when the figures were read (exclusive), UTC")
    first_day: date = Field(description="the first UTC day the productivity figures count")
    last_day: date = Field(description="the last UTC day they count (today)")


class Productivity(_Model):
    """Every pattern's executions in the period's UTC days (the report's `overall`)."""

    patterns: int = Field(ge=0, description="patterns with executions in the period")
    executions: int = Field(ge=0)
    successful_executions: int = Field(ge=0)
    success_rate: Dec | None = Field(description="successful / all executions, 0..1")
    time_saved_seconds: Dec = Field(description="net seconds saved (exact)")
    hours_saved: Dec = Field(description="time_saved_seconds / 3600, six decimal places")


class ListedPattern(_Model):
    """A best or worst pattern: the report's figures of it in the period, its rating and the
    recommendation that goes with it."""

    rank: int = Field(ge=1)
    pattern_id: str
    rating: Rating
    recommendation: str
    executions: int = Field(ge=0)
    success_rate: Dec | None
    wilson_lower_bound: Dec | None = Field(description="95 % Wilson lower bound of success_rate")
    cost_saved_usd: Dec = Field(description="net USD saved (exact)")
    roi_percentage: Dec | None = Field(description="100 * cost saved / investment; null: 0 spent")

    @classmethod
    def of(cls, rank: int, report: PatternReport) -> Self:
        return cls(
            rank=rank,
            pattern_id=report.pattern_id,
            rating=report.rating,
            recommendation=report.recommendation,
            executions=report.executions,
            success_rate=report.success_rate,
            wilson_lower_bound=report.wilson_lower_bound,
            cost_saved_usd=report.cost_saved_usd,
            roi_percentage=report.roi_percentage,
        )


class ExecutiveSummary(_Model):
    """What `roi-worker report --executive --format json` prints and GET
    /api/roi-tracking/executive-summary?format=json answers."""

    summary_version: Literal[1]
    generated_at: datetime
    period: SummaryPeriod
    min_executions: int = Field(ge=1, description="executions a pattern needs to be rated")
    cost_savings: MonthToDateReport = Field(
        description="the report summary's month_to_date: net savings this month so far, the "
        "change against the same days of last month, and the projections"
    )
    productivity: Productivity
    top_performers: list[ListedPattern] = Field(
        description=f"at most {LISTED}: rated acceptable or better, highest ROI first"
    )
    underperformers: list[ListedPattern] = Field(
        description=f"at most {LISTED}: rated poor or failed, lowest ROI first"
    )


def period_window(period: Period, now: datetime) -> Window:
    """The report window of a period at `now`: the UTC days from the first of the month."""
    del period  # one period so far: the month
    today = now.astimezone(UTC).date()
    return Window(today.replace(day=1), today)


def build_summary(analytics: Analytics, mtd: MonthToDate, period: Period) -> ExecutiveSummary:
    """The summary of `analytics` (read for `period_window`) and the month to date, through
    the report document's models, so each figure is the report's."""
    report = build_document(analytics, "summary", [], LISTED)
    overall = report.overall
    window = analytics.window
    spans = mtd.spans
    return ExecutiveSummary(
        summary_version=SUMMARY_VERSION,
        generated_at=analytics.generated_at.astimezone(UTC),
        period=SummaryPeriod(
            name=period,
            label=f"{spans.current.start:%B %Y}",
            start=spans.current.start,
            end=spans.now,
            first_day=window.since or window.until,
            last_day=window.until,
        ),
        min_executions=analytics.min_executions,
        cost_savings=MonthToDateReport.of(mtd),
        productivity=Productivity(
            patterns=overall.patterns,
            executions=overall.executions,
            successful_executions=overall.successful_executions,
            success_rate=overall.success_rate,
            time_saved_seconds=overall.time_saved_seconds,
            hours_saved=round_half_up(overall.time_saved_seconds / SECONDS_PER_HOUR, PLACES),
        ),
        top_performers=[
            ListedPattern.of(rank, PatternReport.from_analytics(p))
            for rank, p in enumerate(analytics.top_performers(LISTED), start=1)
        ],
        underperformers=[
            ListedPattern.of(rank, PatternReport.from_analytics(p))
            for rank, p in enumerate(analytics.underperformers(LISTED), start=1)
        ],
    )


def read_summary(
    cur: psycopg.Cursor[Any], period: Period, now: datetime, min_executions: int
) -> ExecutiveSummary:
    """The summary at `now`, read through `cur` (a `snapshot` cursor: one consistent state)."""
    analytics = read_analytics(
        cur, period_window(period, now), min_executions, now, percentiles=False
    )
    return build_summary(analytics, read_month_to_date(cur, now), period)


def load_summary(
    conn: psycopg.Connection[Any], period: Period, now: datetime, min_executions: int
) -> ExecutiveSummary:
    """`read_summary` in a snapshot of its own."""
    with snapshot(conn) as cur:
        return read_summary(cur, period, now, min_executions)
