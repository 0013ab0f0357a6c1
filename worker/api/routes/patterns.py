"""GET /api/roi-tracking/...: every pattern's summary, one pattern, its full report, rankings.

Reads go through worker.roi.analytics (one REPEATABLE READ snapshot per request) and
worker.roi.report_document, the code path of `roi-worker report --format json`, so the numbers are
the report's. Only the report endpoint reads the execution-time percentiles, and only for its one
pattern: the others read nothing but the summary tables, whatever the number of stored
executions. The answers for every pattern are cached for ROI_API_CACHE_SECONDS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import psycopg
from fastapi import APIRouter, Path, Query, Response
from psycopg.rows import dict_row

from ...contract.event import PATTERN_ID_RE
from ...roi.analytics import Analytics, PatternAnalytics, load_analytics, read_analytics, snapshot
from ...roi.methodology import Window
from ...roi.report_document import Overall, PatternReport, build_document
from ...settings import Settings
from ..backends import Database
from ..cache import TtlCache
from ..errors import InvalidParameterError
from ..models import (
    FieldProblem,
    PatternDetail,
    PatternFullReport,
    PatternSummary,
    Ranking,
    RecentExecution,
    SummaryPage,
    scope_of,
)
from ..responses import json_response, unknown_pattern
from .common import DATABASE_UNAVAILABLE, INVALID_PARAMETER, ROI, UNKNOWN_PATTERN, Access

# The route's check of `since`; Window.parse then refuses a date after today or before EARLIEST.
SINCE_RE: Final = r"^([1-9][0-9]{0,4}d|[0-9]{4}-[0-9]{2}-[0-9]{2})$"
_RECENT: Final = """
SELECT event_id, executed_at, success, execution_time_seconds, estimated_time_seconds,
       actual_cost, estimated_cost, workflow_id, error_message, outcome, quality_score,
       actual_tokens, baseline_tokens
FROM pattern_executions WHERE pattern_id = %s
ORDER BY executed_at DESC, event_id DESC LIMIT %s
"""

PatternIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=PATTERN_ID_RE,
        description="1-200 characters of A-Z a-z 0-9 . _ : / - (as in the event contract)",
    ),
]
Since = Annotated[
    str | None,
    Query(
        pattern=SINCE_RE,
        description="Only executions since: `7d`, `30d`, `90d` (today and the N-1 UTC days "
        "before) or a date YYYY-MM-DD, compared with the previous window of the same length. "
        "Default: all time.",
    ),
]
MinExecutions = Annotated[
    int | None,
    Query(ge=1, le=1_000_000, description="executions needed to be rated (default 10)"),
]
RankingLimit = Annotated[int, Query(ge=1, le=100, description="patterns at most")]


@dataclass(frozen=True, slots=True)
class _AllPatterns:
    """Every pattern's analytics (no percentiles) and their summaries, shared by readers."""

    analytics: Analytics
    summaries: dict[str, PatternSummary]
    overall: Overall

    def pick(self, patterns: list[PatternAnalytics]) -> list[PatternSummary]:
        return [self.summaries[p.pattern_id] for p in patterns]


def router(settings: Settings, db: Database, access: Access) -> APIRouter:
    """The ROI reads, from `db` by those `access` admits."""
    routes = APIRouter()
    # Keyed by what the answer depends on (the window's days and min_executions), parsed and
    # checked first: a bad `since` never reaches the cache, and `7d` shares with its date.
    cache: TtlCache[tuple[Window, int], _AllPatterns] = TtlCache(settings.api_cache_seconds)

    def analytics(
        since: str | None, min_executions: int | None, *, pattern_id: str | None = None
    ) -> Analytics:
        return load(window_of(since), min_executions or settings.min_executions, pattern_id)

    def load(window: Window, minimum: int, pattern_id: str | None = None) -> Analytics:
        with db.connection() as conn:
            return load_analytics(
                conn,
                window,
                minimum,
                datetime.now(UTC),
                pattern_id=pattern_id,
                percentiles=False,
            )

    def all_patterns(since: str | None, min_executions: int | None) -> _AllPatterns:
        def compute() -> _AllPatterns:
            found = load(window, minimum)
            return _AllPatterns(
                found,
                {p.pattern_id: PatternSummary.from_analytics(p) for p in found.patterns},
                build_document(found, "summary", [], 1).overall,
            )

        window, minimum = window_of(since), min_executions or settings.min_executions
        return cache.get((window, minimum), compute)

    @routes.get(
        f"{ROI}/summary",
        response_model=SummaryPage,
        responses=access.responses(INVALID_PARAMETER | DATABASE_UNAVAILABLE),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Every pattern's summary, a page at a time, ordered by pattern_id",
    )
    def summary(
        since: Since = None,
        min_executions: MinExecutions = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="patterns per page")] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000, description="patterns to skip")] = 0,
    ) -> Response:
        every = all_patterns(since, min_executions)
        found = every.analytics
        return json_response(
            SummaryPage(
                **scope_of(found),
                total=len(found.patterns),
                limit=limit,
                offset=offset,
                overall=every.overall,
                patterns=every.pick(list(found.patterns[offset : offset + limit])),
            )
        )

    @routes.get(
        f"{ROI}/pattern/{{pattern_id:path}}",
        response_model=PatternDetail,
        responses=access.responses(UNKNOWN_PATTERN | INVALID_PARAMETER | DATABASE_UNAVAILABLE),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="One pattern's summary",
    )
    def pattern(
        pattern_id: PatternIdPath, since: Since = None, min_executions: MinExecutions = None
    ) -> Response:
        found = analytics(since, min_executions, pattern_id=pattern_id)
        one = found.find(pattern_id)
        if one is None:
            return unknown_pattern(pattern_id)
        return json_response(
            PatternDetail(**scope_of(found), pattern=PatternSummary.from_analytics(one))
        )

    @routes.get(
        f"{ROI}/report/{{pattern_id:path}}",
        response_model=PatternFullReport,
        responses=access.responses(UNKNOWN_PATTERN | INVALID_PARAMETER | DATABASE_UNAVAILABLE),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Everything about one pattern: figures, rating, recommendation, Wilson bound, "
        "trend, execution-time percentiles and its latest executions",
    )
    def report(
        pattern_id: PatternIdPath,
        since: Since = None,
        min_executions: MinExecutions = None,
        recent: Annotated[
            int, Query(ge=0, le=100, description="latest executions to list, newest first")
        ] = 10,
    ) -> Response:
        window = window_of(since)
        minimum = min_executions or settings.min_executions
        with db.connection() as conn, snapshot(conn) as cur:
            found = read_full_report(cur, window, minimum, pattern_id, recent)
        return unknown_pattern(pattern_id) if found is None else json_response(found)

    def ranking(
        pick: Callable[[Analytics, int], list[PatternAnalytics]],
    ) -> Callable[[Since, MinExecutions, RankingLimit], Response]:
        def endpoint(
            since: Since = None, min_executions: MinExecutions = None, limit: RankingLimit = 10
        ) -> Response:
            every = all_patterns(since, min_executions)
            return json_response(
                Ranking(
                    **scope_of(every.analytics),
                    limit=limit,
                    patterns=every.pick(pick(every.analytics, limit)),
                )
            )

        return endpoint

    routes.get(
        f"{ROI}/top-performers",
        response_model=Ranking,
        responses=access.responses(INVALID_PARAMETER | DATABASE_UNAVAILABLE),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Patterns rated acceptable or better, highest ROI first",
        operation_id="top_performers",
    )(ranking(Analytics.top_performers))
    routes.get(
        f"{ROI}/underperformers",
        response_model=Ranking,
        responses=access.responses(INVALID_PARAMETER | DATABASE_UNAVAILABLE),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Patterns rated poor or failed, lowest ROI first",
        operation_id="underperformers",
    )(ranking(Analytics.underperformers))
    return routes


def read_full_report(
    cur: psycopg.Cursor[Any], window: Window, minimum: int, pattern_id: str, recent: int
) -> PatternFullReport | None:
    """GET /report/{pattern_id}'s answer (None: no execution of it is stored), read through
    `cur` (a `snapshot` cursor); the dashboard's pattern page shows the same."""
    found = read_analytics(
        cur,
        window,
        minimum,
        datetime.now(UTC),
        pattern_id=pattern_id,
        percentiles=True,  # for this one pattern only: an index range, not a table scan
    )
    one = found.find(pattern_id)
    if one is None:
        return None
    cur.row_factory = dict_row
    rows = cur.execute(_RECENT, (pattern_id, recent)).fetchall()
    return PatternFullReport(
        **scope_of(found),
        pattern=PatternReport.from_analytics(one),
        recent_executions=[RecentExecution.of_row(row) for row in rows],
    )


def window_of(since: str | None) -> Window:
    """The window `since` names, today being the UTC date; 422 when it is out of bounds."""
    try:
        return Window.parse(since, datetime.now(UTC).date())
    except ValueError as exc:
        raise InvalidParameterError(
            FieldProblem(loc=["query", "since"], msg=str(exc), type="since", input=since)
        ) from None
