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
from .methodology import EXACT, ZERO, Rating, Totals, Trend, Window
from .month_to_date import MonthToDate
from .snapshots import Deltas, LatestSnapshot, PatternSnapshots, Snapshot, SnapshotStatus
from .tracking import Tracking

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
    # Optional in the schema (added after v1 was published), always present.
    outcome_success_executions: int = Field(default=0, ge=0, description="outcome success")
    outcome_failure_executions: int = Field(default=0, ge=0, description="outcome failure")
    outcome_partial_success_executions: int = Field(
        default=0, ge=0, description="outcome partial_success"
    )
    outcome_error_executions: int = Field(default=0, ge=0, description="outcome error")
    quality_scored_executions: int = Field(
        default=0, ge=0, description="executions that carry a quality_score"
    )
    quality_score_sum: Dec = Field(default=ZERO, description="sum of quality_score (exact)")
    quality_score_mean: Dec | None = Field(
        default=None, description="quality_score_sum / quality_scored_executions; null: none"
    )
    token_measured_executions: int = Field(
        default=0, ge=0, description="executions that give both actual_tokens and baseline_tokens"
    )
    tokens_saved: int = Field(
        default=0,
        description="sum of baseline_tokens - actual_tokens over token_measured_executions; "
        "may be negative",
    )

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
    quality_trend: Trend = Field(
        default=Trend.STABLE, description="of the daily mean quality_score, by the trend's rule"
    )
    quality_score_change: Dec | None = Field(
        default=None,
        description="fitted change of the daily mean quality_score across the window (0..1 "
        "scale); null with fewer than two days with scored executions",
    )
    quality_score_change_margin: Dec | None = Field(
        default=None, description="95 % margin of error of quality_score_change"
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
        quality = pattern.quality_change
        return cls(
            pattern_id=pattern.pattern_id,
            **_figures(pattern.totals),
            rating=pattern.rating,
            recommendation=pattern.rating.recommendation,
            wilson_lower_bound=_derived(pattern.wilson_lower_bound),
            trend=pattern.trend,
            success_rate_change=None if fitted is None else _derived(fitted.change),
            success_rate_change_margin=None if fitted is None else _derived(fitted.margin),
            quality_trend=pattern.quality_trend,
            quality_score_change=None if quality is None else _derived(quality.change),
            quality_score_change_margin=None if quality is None else _derived(quality.margin),
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


# --------------------------------------------------------------------------- snapshots, MTD


class SnapshotDeltas(_Model):
    """A snapshot's figures minus a reference window's (worker.roi.snapshots.Deltas): rates and
    per-execution figures, since the windows differ in length."""

    success_rate: Dec | None = Field(description="a fraction: -0.05 is 5 points lower")
    average_cost_saved_usd: Dec | None = Field(description="net USD saved per execution")
    average_cost_saved_percentage: Dec | None = Field(
        description="100 * change / |reference|; null when the reference saved 0 per execution"
    )
    average_time_saved_seconds: Dec | None
    roi_percentage: Dec | None = Field(description="in percentage points")
    executions_per_day: Dec | None

    @classmethod
    def of(cls, deltas: Deltas | None) -> SnapshotDeltas | None:
        if deltas is None:
            return None
        return cls(**{name: _derived(getattr(deltas, name)) for name in cls.model_fields})


class SnapshotReport(_Model):
    """One window of a pattern: the baseline (days 0..6), or the 30 days before day `day`.

    A pending window (`complete` false) has no figures, rating or status yet; it is judged
    from `available_on`."""

    label: str = Field(description="baseline, day_30, day_60, day_90, or at (--at / ?at=)")
    day: int = Field(description="the window covers days [day - days, day) after day 0")
    days: int = Field(ge=1)
    first_day: date
    last_day: date = Field(description="inclusive")
    available_on: date
    complete: bool
    status: SnapshotStatus | None = Field(description="null for the baseline and when pending")
    rating: Rating | None
    wilson_lower_bound: Dec | None
    figures: Figures | None
    vs_baseline: SnapshotDeltas | None
    vs_previous: SnapshotDeltas | None
    previous_label: str | None = Field(description="the snapshot vs_previous compares with")

    @classmethod
    def of(cls, snapshot: Snapshot) -> Self:
        return cls(
            label=snapshot.label,
            day=snapshot.day,
            days=snapshot.days,
            first_day=snapshot.first_day,
            last_day=snapshot.last_day,
            available_on=snapshot.available_on,
            complete=snapshot.complete,
            status=snapshot.status,
            rating=snapshot.rating,
            wilson_lower_bound=_derived(snapshot.wilson_lower_bound),
            figures=None if snapshot.totals is None else Figures.of(snapshot.totals),
            vs_baseline=SnapshotDeltas.of(snapshot.vs_baseline),
            vs_previous=SnapshotDeltas.of(snapshot.vs_previous),
            previous_label=snapshot.previous_label,
        )


class PatternSnapshotsReport(_Model):
    """A pattern's day 0, baseline and snapshots (day order), and its latest status."""

    pattern_id: str
    day0: date = Field(description="UTC date of its first stored or archived execution")
    latest_status: SnapshotStatus | None = Field(
        description="of the latest complete snapshot at day 30, 60 or 90; null before day 30"
    )
    baseline: SnapshotReport
    snapshots: list[SnapshotReport]

    @classmethod
    def of(cls, found: PatternSnapshots) -> Self:
        latest = found.latest
        return cls(
            pattern_id=found.pattern_id,
            day0=found.day0,
            latest_status=None if latest is None else latest.status,
            baseline=SnapshotReport.of(found.baseline),
            snapshots=[SnapshotReport.of(s) for s in found.snapshots],
        )


class SnapshotsDocument(_Model):
    """What `roi-worker report --snapshots --format json` prints."""

    report_version: Literal[1]
    generated_at: datetime
    today: date = Field(description="UTC date the windows are complete on")
    at: date | None = Field(description="the extra snapshot's date (--at), if any")
    min_executions: int = Field(ge=1)
    patterns: list[PatternSnapshotsReport]


class LatestSnapshotReport(_Model):
    """A pattern's latest complete snapshot at day 30, 60 or 90, in the summary."""

    pattern_id: str
    day: int | None = Field(description="30, 60 or 90; null before day 30")
    first_day: date | None
    last_day: date | None
    status: SnapshotStatus | None = Field(description="null: the pattern is not at day 30 yet")

    @classmethod
    def of(cls, pattern_id: str, latest: LatestSnapshot | None) -> Self:
        """The entry of `pattern_id`, whose latest snapshot is `latest` (None: before day 30)."""
        return cls(
            pattern_id=pattern_id,
            day=None if latest is None else latest.day,
            first_day=None if latest is None else latest.first_day,
            last_day=None if latest is None else latest.last_day,
            status=None if latest is None else latest.status,
        )


class MonthToDateReport(_Model):
    """Net cost saved this UTC calendar month so far, against the same elapsed span of the
    previous month, and the projections (docs/roi-methodology.md, "Month to date")."""

    as_of: datetime
    month_start: datetime
    previous_start: datetime
    previous_end: datetime = Field(description="exclusive; clamped to the previous month's end")
    cost_saved_usd: Dec = Field(description="net, exact")
    executions: int = Field(ge=0)
    previous_cost_saved_usd: Dec
    previous_executions: int = Field(ge=0)
    change_percentage: Dec | None = Field(description="null when the previous span saved 0")
    elapsed_days: Dec = Field(description="seconds since the month began / 86400, at least 1")
    days_in_month: int = Field(ge=28, le=31)
    projected_month_end_usd: Dec
    trailing_30_days_cost_saved_usd: Dec
    projected_annual_usd: Dec

    @classmethod
    def of(cls, mtd: MonthToDate) -> Self:
        spans = mtd.spans
        return cls(
            as_of=spans.now,
            month_start=spans.current.start,
            previous_start=spans.previous.start,
            previous_end=spans.previous.end,
            cost_saved_usd=mtd.cost_saved_usd,
            executions=mtd.executions,
            previous_cost_saved_usd=mtd.previous_cost_saved_usd,
            previous_executions=mtd.previous_executions,
            change_percentage=_derived(mtd.change_percentage),
            elapsed_days=round_half_up(spans.elapsed_days, PLACES),
            days_in_month=spans.days_in_month,
            projected_month_end_usd=round_half_up(mtd.projected_month_end_usd, PLACES),
            trailing_30_days_cost_saved_usd=mtd.trailing_cost_saved_usd,
            projected_annual_usd=round_half_up(mtd.projected_annual_usd, PLACES),
        )


def latest_snapshots(tracking: Tracking, patterns: list[str]) -> list[LatestSnapshotReport]:
    """The latest snapshot of each of `patterns`, in that order."""
    return [LatestSnapshotReport.of(p, tracking.latest.get(p)) for p in patterns]


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
    month_to_date: MonthToDateReport | None = Field(
        default=None, description="the summary only (docs/roi-methodology.md, Month to date)"
    )
    latest_snapshots: list[LatestSnapshotReport] | None = Field(
        default=None, description="the summary only: every pattern's latest snapshot status"
    )


def build_document(
    analytics: Analytics,
    selection: Selection,
    patterns: list[PatternAnalytics],
    limit: int,
    *,
    tracking: Tracking | None = None,
) -> ReportDocument:
    """The document of a selection; `tracking` adds the month to date and the latest snapshot
    statuses (the summary shows them)."""
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
        month_to_date=None if tracking is None else MonthToDateReport.of(tracking.month_to_date),
        latest_snapshots=None
        if tracking is None
        else latest_snapshots(tracking, [p.pattern_id for p in analytics.patterns]),
    )
