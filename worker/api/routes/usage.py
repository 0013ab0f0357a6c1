"""GET /api/pattern-analytics/usage-stats: executions per UTC hour, day or week per pattern.

Reads the hourly summary only (worker.roi.usage_stats), whatever the number of stored
executions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from ...contract.event import PATTERN_ID_RE
from ...roi.analytics import pattern_exists
from ...roi.usage_stats import GroupBy, TimeRange, TooManyBucketsError, load_usage_stats
from ..backends import Database
from ..errors import invalid
from ..models import UsageStatsBody
from ..responses import json_response, unknown_pattern
from .common import DATABASE_UNAVAILABLE, INVALID_PARAMETER, UNKNOWN_PATTERN, USAGE, Access


def router(db: Database, access: Access) -> APIRouter:
    """The usage statistics, read from `db` by those `access` admits."""
    routes = APIRouter()

    @routes.get(
        f"{USAGE}/usage-stats",
        response_model=UsageStatsBody,
        responses=access.responses(UNKNOWN_PATTERN | INVALID_PARAMETER | DATABASE_UNAVAILABLE),
        tags=["pattern-analytics"],
        dependencies=access.dependencies,
        summary="Executions per UTC hour, day or week (weeks start on Monday) per pattern",
    )
    def usage_stats(
        pattern_id: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=200,
                pattern=PATTERN_ID_RE,
                description="only this pattern (default: every pattern that ran in the range)",
            ),
        ] = None,
        time_range: Annotated[TimeRange, Query(description="how far back from now")] = "7d",
        group_by: Annotated[GroupBy, Query(description="bucket size")] = "day",
    ) -> Response:
        with db.connection() as conn:
            if pattern_id is not None and not pattern_exists(conn, pattern_id):
                return unknown_pattern(pattern_id)
            try:
                stats = load_usage_stats(
                    conn, datetime.now(UTC), time_range, group_by, pattern_id=pattern_id
                )
            except TooManyBucketsError as exc:
                raise invalid(["query", "group_by"], str(exc), "too_many_buckets") from None
        return json_response(UsageStatsBody.of(stats))

    return routes
