"""The JSON report document (`roi-worker report --format json`): a stable, versioned shape.

Published as schemas/roi-report.v1.json and documented in docs/reports.md. Sums are exact, as
stored; derived figures (rates, averages, ROI, bounds, changes) are rounded half up to six decimal
places. Every decimal is a JSON string, so no reader parses money through a float. Changes to
this shape add optional fields only; anything else is a new `report_version`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from .analytics import Analytics, PatternAnalytics
from .figures import FIGURES
from .formatting import round_half_up
from .methodology import EXACT, Rating, Totals, Trend, Window

REPORT_VERSION: Final = 1
PLACES: Final = Decimal("0.000001")

Selection = Literal["summary", "pattern", "top_performers", "underperformers"]

# A decimal number as a JSON string in positional notation: "-12.50", "0.986667", never "1E-7".
Dec = Annotated[
    Decimal,
    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}),
]


def _derived(value: Decimal | None) -> Decimal | None:
    return None if value is None else round_half_up(value, PLACES)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Figures(_Model):
    """Counts, exact sums and the figures derived from them, for a set of executions."""

    executions: int = Field(ge=0)
    successful_executions: int = Field(ge=0)
    success_rate: Dec | None = Field(description="successful / all executions, 0..1")
    time_saved_seconds: Dec = Field(description="net seconds saved (exact)")
    cost_saved_usd: Dec = Field(description="net USD saved (exact)")
    investment_usd: Dec = Field(description="sum of actual_cost: what running it cost (exact)")
    estimated_cost_usd: Dec
    execution_time_seconds: Dec
    estimated_time_seconds: Dec
    average_time_saved_seconds: Dec | None
    average_cost_saved_usd: Dec | None
    roi_percentage: Dec | None = Field(description="100 * cost saved / investment; null: 0 spent")
    negative_savings_executions: int = Field(ge=0)
    cost_anomaly_executions: int = Field(ge=0)

    @classmethod
    def of(cls, totals: Totals) -> Figures:
        return cls(**_figures(totals))


def _figures(totals: Totals) -> dict[str, object]:
    """The report's figures of `totals`, by worker.roi.figures: the stored ones exact, the
    derived ones rounded to PLACES."""
    return {
        figure.name: getattr(totals, figure.name)
        if figure.stored
        else _derived(getattr(totals, figure.name))
        for figure in FIGURES
    }


class Change(_Model):
    """This window minus the previous one (success rate as a fraction, ROI in points)."""

    executions: int
    success_rate: Dec | None = Field(description="null when either window has no executions")
    time_saved_seconds: Dec
    cost_saved_usd: Dec
    roi_percentage: Dec | None = Field(description="null when either window spent nothing")

    @classmethod
    def between(cls, now: Totals, before: Totals) -> Change:
        return cls(
            executions=now.executions - before.executions,
            success_rate=_derived(_minus(now.success_rate, before.success_rate)),
            time_saved_seconds=EXACT.subtract(now.time_saved_seconds, before.time_saved_seconds),
            cost_saved_usd=EXACT.subtract(now.cost_saved_usd, before.cost_saved_usd),
            roi_percentage=_derived(_minus(now.roi_percentage, before.roi_percentage)),
        )


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _minus(now: Decimal | None, before: Decimal | None) -> Decimal | None:
    return None if now is None or before is None else EXACT.subtract(now, before)


class ExecutionTime(_Model):
    """Execution time percentiles in seconds (observed values, nearest rank)."""

    p50: Dec
    p95: Dec
    p99: Dec


class _Pattern(_Model):
    pattern_id: str


class PatternReport(Figures, _Pattern):  # pattern_id first, then the figures
    """One pattern: its figures in the window, what they mean, and how they moved."""

    rating: Rating
    recommendation: str
    wilson_lower_bound: Dec | None = Field(description="95 % Wilson lower bound of success_rate")
    trend: Trend
    success_rate_change: Dec | None = Field(
        description="fitted change of the daily success rate across the window (fraction)"
    )
    success_rate_change_margin: Dec | None = Field(
        description="95 % margin of error of success_rate_change"
    )
    execution_time_percentiles: ExecutionTime | None
    first_executed_at: datetime | None = Field(description="over all time")
    last_executed_at: datetime | None = Field(description="over all time")
    previous: Figures | None = Field(description="the previous window of the same length")
    change: Change | None

    @classmethod
    def from_analytics(cls, pattern: PatternAnalytics) -> Self:
        timing = pattern.execution_time
        previous = pattern.previous
        fitted = pattern.success_rate_change
        return cls(
            pattern_id=pattern.pattern_id,
            **_figures(pattern.totals),
            rating=pattern.rating,
            recommendation=pattern.rating.recommendation,
            wilson_lower_bound=_derived(pattern.wilson_lower_bound),
            trend=pattern.trend,
            success_rate_change=None if fitted is None else _derived(fitted.change),
            success_rate_change_margin=None if fitted is None else _derived(fitted.margin),
            execution_time_percentiles=None
            if timing is None
            else ExecutionTime(p50=timing.p50, p95=timing.p95, p99=timing.p99),
            first_executed_at=_utc(pattern.first_executed_at),
            last_executed_at=_utc(pattern.last_executed_at),
            previous=None if previous is None else Figures.of(previous),
            change=None if previous is None else Change.between(pattern.totals, previous),
        )


class Overall(Figures):
    """Every pattern together; success_rate is per execution, not an average of patterns."""

    patterns: int = Field(ge=0, description="patterns with executions in the window")
    previous: Figures | None
    change: Change | None


class ReportWindow(_Model):
    """UTC days; `since` null means all time. The previous window ends the day before since."""

    since: date | None
    until: date
    days: int | None
    previous_since: date | None
    previous_until: date | None

    @classmethod
    def of(cls, window: Window) -> Self:
        previous = window.previous
        return cls(
            since=window.since,
            until=window.until,
            days=window.days,
            previous_since=None if previous is None else previous.since,
            previous_until=None if previous is None else previous.until,
        )


class ReportDocument(_Model):
    """What `roi-worker report --format json` prints."""

    report_version: Literal[1]
    selection: Selection
    generated_at: datetime
    min_executions: int = Field(ge=1)
    window: ReportWindow
    overall: Overall
    top_performers: list[str] = Field(description="pattern ids, best ROI first")
    underperformers: list[str] = Field(description="pattern ids rated poor or failed")
    patterns: list[PatternReport] = Field(description="the selected patterns")


def build_document(
    analytics: Analytics,
    selection: Selection,
    patterns: list[PatternAnalytics],
    limit: int,
) -> ReportDocument:
    overall = analytics.overall
    overall_previous = analytics.overall_previous
    return ReportDocument(
        report_version=REPORT_VERSION,
        selection=selection,
        generated_at=analytics.generated_at,
        min_executions=analytics.min_executions,
        window=ReportWindow.of(analytics.window),
        overall=Overall(
            **_figures(overall),
            patterns=len(analytics.tracked),
            previous=None if overall_previous is None else Figures.of(overall_previous),
            change=None if overall_previous is None else Change.between(overall, overall_previous),
        ),
        top_performers=[p.pattern_id for p in analytics.top_performers(limit)],
        underperformers=[p.pattern_id for p in analytics.underperformers(limit)],
        patterns=[PatternReport.from_analytics(p) for p in patterns],
    )
