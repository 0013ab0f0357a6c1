"""The read API's response bodies: the report document's models, wrapped for HTTP.

Every figure is a model of worker.roi.report_document built from worker.roi.analytics, exactly as
`roi-worker report --format json` builds it, so the API and the report cannot disagree. Decimals
are JSON strings in positional notation ("-12.50"), as in the report. Every response, errors
included, has a model here, so the OpenAPI schema describes all of them.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from ..contract.event import (
    ErrorMessage,
    ExecutedAt,
    Identifier,
    PatternId,
    Seconds,
    Success,
    Usd,
)
from ..contract.outcome import ExecutionOutcome
from ..roi.analytics import Analytics
from ..roi.methodology import Totals
from ..roi.report_document import (
    Dec,
    LatestSnapshotReport,
    Overall,
    PatternReport,
    PatternSnapshotsReport,
    ReportWindow,
)
from ..roi.savings_series import Period, PeriodTotals
from ..roi.usage_stats import GroupBy, TimeRange, UsageStats

MAX_EVENTS_PER_REQUEST: Final = 1000


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- errors


class ErrorBody(_Model):
    """What went wrong, in one sentence (404, 413, 503)."""

    detail: str


class FieldProblem(_Model):
    """One broken rule: where (`loc`, e.g. ["query", "limit"] or ["body", 3, "actual_cost"]),
    why (`msg`), a stable code (`type`) and, when there was one, the offending value."""

    loc: list[str | int]
    msg: str
    type: str
    input: str | None = Field(default=None, description="the offending value, shortened")


class ValidationProblem(_Model):
    """422: every broken rule of the request."""

    detail: list[FieldProblem]


# --------------------------------------------------------------------------- patterns


class PatternSummary(PatternReport):
    """One pattern's figures, rating and trend, as in the report, without the execution-time
    percentiles: those sort the raw executions, so only the report endpoint reads them."""

    execution_time_percentiles: SkipJsonSchema[None] = Field(default=None, exclude=True)


class _Scoped(_Model):
    generated_at: datetime
    min_executions: int = Field(ge=1, description="executions a pattern needs to be rated")
    window: ReportWindow


def scope_of(analytics: Analytics) -> dict[str, Any]:
    """The fields every analytics answer shares, from the analytics themselves."""
    return {
        "generated_at": analytics.generated_at,
        "min_executions": analytics.min_executions,
        "window": ReportWindow.of(analytics.window),
    }


class SummaryPage(_Scoped):
    """A page of every pattern's summary, ordered by pattern_id, and the overall figures."""

    total: int = Field(
        ge=0,
        description="patterns on all pages: those that ran in the window or, with since, in the "
        "previous window",
    )
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)
    overall: Overall
    patterns: list[PatternSummary]


class PatternDetail(_Scoped):
    """One pattern's summary."""

    pattern: PatternSummary


class Ranking(_Scoped):
    """Top performers (rated acceptable or better, highest ROI first) or underperformers
    (rated poor or failed, lowest ROI first)."""

    limit: int = Field(ge=1)
    patterns: list[PatternSummary]


class RecentExecution(_Model):
    """One stored execution and what it saved (net: a failed run loses its own cost and time)."""

    event_id: uuid.UUID
    executed_at: datetime
    success: bool
    execution_time_seconds: Dec
    estimated_time_seconds: Dec
    actual_cost_usd: Dec
    estimated_cost_usd: Dec
    time_saved_seconds: Dec
    cost_saved_usd: Dec
    workflow_id: str | None
    error_message: str | None
    outcome: ExecutionOutcome = Field(
        default="success", description="as sent, or derived from success (success or failure)"
    )
    quality_score: Dec | None = Field(default=None, description="0..1, as sent")
    actual_tokens: int | None = Field(default=None, ge=0)
    baseline_tokens: int | None = Field(default=None, ge=0)

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> RecentExecution:
        saved = Totals.of_execution(
            success=row["success"],
            execution_time_seconds=Decimal(row["execution_time_seconds"]),
            estimated_time_seconds=Decimal(row["estimated_time_seconds"]),
            actual_cost=Decimal(row["actual_cost"]),
            estimated_cost=Decimal(row["estimated_cost"]),
        )
        return cls(
            event_id=row["event_id"],
            executed_at=row["executed_at"],
            success=row["success"],
            execution_time_seconds=saved.execution_time_seconds,
            estimated_time_seconds=saved.estimated_time_seconds,
            actual_cost_usd=saved.investment_usd,
            estimated_cost_usd=saved.estimated_cost_usd,
            time_saved_seconds=saved.time_saved_seconds,
            cost_saved_usd=saved.cost_saved_usd,
            workflow_id=row["workflow_id"],
            error_message=row["error_message"],
            outcome=row["outcome"],
            quality_score=row["quality_score"],
            actual_tokens=row["actual_tokens"],
            baseline_tokens=row["baseline_tokens"],
        )


class PatternFullReport(_Scoped):
    """Everything about one pattern: the report's entry for it (percentiles included) and its
    latest executions, newest first."""

    pattern: PatternReport
    recent_executions: list[RecentExecution]


# --------------------------------------------------------------------------- usage


class PatternSeries(_Model):
    """Counts per bucket, aligned with the answer's `buckets`."""

    pattern_id: str
    total_executions: int = Field(ge=0, description="in the whole range")
    executions: list[int]
    successful_executions: list[int]


class UsageStatsBody(_Model):
    """Executions per UTC bucket per pattern over [start, end): every bucket, zeros included."""

    time_range: TimeRange
    group_by: GroupBy
    start: datetime
    end: datetime
    buckets: list[datetime] = Field(description="the start of each bucket, oldest first")
    patterns: list[PatternSeries] = Field(description="patterns that ran in the range")

    @classmethod
    def of(cls, stats: UsageStats) -> UsageStatsBody:
        return cls(
            time_range=stats.time_range,
            group_by=stats.group_by,
            start=stats.start,
            end=stats.end,
            buckets=stats.buckets,
            patterns=[
                PatternSeries(
                    pattern_id=p.pattern_id,
                    total_executions=sum(p.executions),
                    executions=p.executions,
                    successful_executions=p.successful_executions,
                )
                for p in stats.patterns
            ],
        )


# --------------------------------------------------------------------------- ingestion


class Accepted(_Model):
    """202: the broker has the events; the worker stores them shortly (each event_id once)."""

    status: Literal["accepted"] = "accepted"
    topic: str
    event_ids: list[uuid.UUID] = Field(description="in the order of the request")


# The seed's workflow_id is an integer (workflow_history.id): stored as its decimal string.
SeedWorkflowId = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class SeedExecution(_Model):
    """Seed 000's `PatternExecution` (its step 2), as the seed's clients POST it: the v1
    figures without schema_version and event_id. worker.api.ingest makes it a v1 event: its
    event_id derived from the Idempotency-Key header, or a new one; executed_at, when absent,
    the time the API read the body. A body without `schema_version` is read as this one."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="SeedExecution")

    id: None = Field(
        default=None,
        description="The seed's database id: absent or null. An execution is identified by "
        "its event_id; retries are made safe by the Idempotency-Key header.",
    )
    pattern_id: PatternId = Field(description="The automation pattern that ran.")
    workflow_id: Identifier | SeedWorkflowId | None = Field(
        default=None, description="The workflow run; an integer is stored as its decimal string."
    )
    execution_time_seconds: Seconds = Field(description="How long the automated run took.")
    estimated_time_seconds: Seconds = Field(description="How long the manual work would take.")
    actual_cost: Usd = Field(description="USD the run cost. Decimal number or decimal string.")
    estimated_cost: Usd = Field(description="USD the manual work would cost. Number or string.")
    success: Success = Field(description="Whether the run achieved its goal.")
    error_message: ErrorMessage | None = Field(default=None, description="Why a run failed.")
    executed_at: ExecutedAt | None = Field(
        default=None,
        description="When it ran, RFC 3339 with an offset. Absent or null: when the API read "
        "the body (UTC). Required with an Idempotency-Key header, so that a retry is the same "
        "event.",
    )


class Health(_Model):
    """/healthz and /readyz when they answer 200."""

    status: Literal["alive", "ready"]


# --------------------------------------------------------------------------- snapshots, savings


class PatternSnapshotsBody(_Model):
    """GET /snapshots/{pattern_id}: the report's snapshots of one pattern (`roi-worker report
    --snapshots --pattern-id ID --format json`, docs/roi-methodology.md "Snapshots")."""

    generated_at: datetime
    today: date = Field(description="UTC date the windows are complete on")
    at: date | None = Field(description="the extra snapshot's date (?at=), if any")
    min_executions: int = Field(ge=1)
    pattern: PatternSnapshotsReport


class LatestSnapshotsBody(_Model):
    """GET /latest-snapshots: every pattern that has reached day 30, by pattern_id, with its
    latest snapshot's status (the report summary's `latest_snapshots`). A pattern not listed
    has no complete snapshot yet."""

    generated_at: datetime
    today: date = Field(description="UTC date the snapshots are complete on")
    min_executions: int = Field(ge=1)
    patterns: list[LatestSnapshotReport]


class SavingsPeriodBody(_Model):
    """One period of the savings series; `first_day`..`last_day` are its days in the range
    (the first and last period may be cut by `from` and `to`)."""

    first_day: date
    last_day: date
    executions: int = Field(ge=0)
    successful_executions: int = Field(ge=0)
    cost_saved_usd: Dec = Field(description="net USD saved in the period (exact)")
    time_saved_seconds: Dec = Field(description="net seconds saved in the period (exact)")
    investment_usd: Dec = Field(description="sum of actual_cost in the period (exact)")
    cumulative_executions: int = Field(ge=0, description="from the first period to this one")
    cumulative_cost_saved_usd: Dec
    cumulative_time_saved_seconds: Dec


class SavingsSeriesBody(_Model):
    """GET /savings: net savings of every pattern together per UTC day, week (Monday to
    Sunday) or calendar month, every period of the range, zeros included, oldest first."""

    generated_at: datetime
    period: Period
    first_day: date = Field(description="`from`")
    last_day: date = Field(description="`to`, inclusive")
    periods: list[SavingsPeriodBody]

    @classmethod
    def of(
        cls,
        generated_at: datetime,
        period: Period,
        first: date,
        last: date,
        found: list[PeriodTotals],
    ) -> SavingsSeriesBody:
        running = Totals()
        bodies = []
        for entry in found:
            totals = entry.totals
            running += totals
            bodies.append(
                SavingsPeriodBody(
                    first_day=entry.first_day,
                    last_day=entry.last_day,
                    executions=totals.executions,
                    successful_executions=totals.successful_executions,
                    cost_saved_usd=totals.cost_saved_usd,
                    time_saved_seconds=totals.time_saved_seconds,
                    investment_usd=totals.investment_usd,
                    cumulative_executions=running.executions,
                    cumulative_cost_saved_usd=running.cost_saved_usd,
                    cumulative_time_saved_seconds=running.time_saved_seconds,
                )
            )
        return cls(
            generated_at=generated_at,
            period=period,
            first_day=first,
            last_day=last,
            periods=bodies,
        )
