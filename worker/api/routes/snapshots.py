"""GET /api/roi-tracking/snapshots/{pattern_id}: a pattern's baseline and its 30-day snapshots
at day 30, 60 and 90 (and at `?at=DATE`), each with its status (docs/roi-methodology.md).

The same read and the same document as `roi-worker report --snapshots --pattern-id ID --format
json` (worker.roi.snapshots, worker.roi.report_document): sums of daily rollups only, one
REPEATABLE READ snapshot per request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from ...roi.analytics import pattern_exists, snapshot
from ...roi.report_document import PatternSnapshotsReport
from ...roi.snapshots import load_snapshots, parse_at
from ...settings import Settings
from ..backends import Database
from ..errors import invalid
from ..models import PatternSnapshotsBody
from ..responses import json_response, unknown_pattern
from .common import DATABASE_UNAVAILABLE, INVALID_PARAMETER, ROI, UNKNOWN_PATTERN, Access
from .patterns import MinExecutions, PatternIdPath

At = Annotated[
    str | None,
    Query(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        description="also the snapshot of the 30 UTC days before this date (YYYY-MM-DD, today "
        "at the latest)",
    ),
]


def router(settings: Settings, db: Database, access: Access) -> APIRouter:
    """The snapshots, read from `db` by those `access` admits."""
    routes = APIRouter()

    @routes.get(
        f"{ROI}/snapshots/{{pattern_id:path}}",
        response_model=PatternSnapshotsBody,
        responses=access.responses(UNKNOWN_PATTERN | INVALID_PARAMETER | DATABASE_UNAVAILABLE),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="One pattern's baseline (days 0-6) and 30-day snapshots at day 30, 60 and 90, "
        "with deltas and status",
    )
    def snapshots(
        pattern_id: PatternIdPath, at: At = None, min_executions: MinExecutions = None
    ) -> Response:
        now = datetime.now(UTC)
        try:
            at_date = None if at is None else parse_at(at, now.date())
        except ValueError as exc:
            raise invalid(["query", "at"], str(exc), "at") from None
        minimum = min_executions or settings.min_executions
        with db.connection() as conn:
            if not pattern_exists(conn, pattern_id):
                return unknown_pattern(pattern_id)
            with snapshot(conn) as cur:
                found = load_snapshots(
                    cur, now.date(), minimum, pattern_ids=[pattern_id], at=at_date
                )
        if pattern_id not in found:  # its summary has no first execution time
            return unknown_pattern(pattern_id)
        return json_response(
            PatternSnapshotsBody(
                generated_at=now,
                today=now.date(),
                at=at_date,
                min_executions=minimum,
                pattern=PatternSnapshotsReport.of(found[pattern_id]),
            )
        )

    return routes
