"""GET /api/roi-tracking/month-to-date and /latest-snapshots: what the report's summary shows
beside the window's figures (worker.roi.tracking), for the dashboard's hero and its patterns
table.

The same reads and the same models as `roi-worker report --format json`'s `month_to_date` and
`latest_snapshots` (worker.roi.month_to_date, worker.roi.snapshots, worker.roi.report_document),
in one REPEATABLE READ snapshot per request. Neither read grows with the stored executions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response

from ...roi.analytics import snapshot
from ...roi.month_to_date import read_month_to_date
from ...roi.report_document import LatestSnapshotReport, MonthToDateReport
from ...roi.snapshots import read_latest
from ...settings import Settings
from ..backends import Database
from ..models import LatestSnapshotsBody
from ..responses import json_response
from .common import DATABASE_UNAVAILABLE, INVALID_PARAMETER, ROI, Access
from .patterns import MinExecutions


def router(settings: Settings, db: Database, access: Access) -> APIRouter:
    """Month to date and the latest snapshots, read from `db` by those `access` admits."""
    routes = APIRouter()

    @routes.get(
        f"{ROI}/month-to-date",
        response_model=MonthToDateReport,
        responses=access.responses(DATABASE_UNAVAILABLE),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Net savings this UTC month so far, the change on the same span of last month, "
        "and the month-end and annual projections",
    )
    def month_to_date() -> Response:
        with db.connection() as conn, snapshot(conn) as cur:
            found = read_month_to_date(cur, datetime.now(UTC))
        return json_response(MonthToDateReport.of(found))

    @routes.get(
        f"{ROI}/latest-snapshots",
        response_model=LatestSnapshotsBody,
        responses=access.responses(INVALID_PARAMETER | DATABASE_UNAVAILABLE),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Every pattern's latest 30-day snapshot (day 30, 60 or 90) and its status",
    )
    def latest_snapshots(min_executions: MinExecutions = None) -> Response:
        now = datetime.now(UTC)
        minimum = min_executions or settings.min_executions
        with db.connection() as conn, snapshot(conn) as cur:
            found = read_latest(cur, now.date(), minimum)
        return json_response(
            LatestSnapshotsBody(
                generated_at=now,
                today=now.date(),
                min_executions=minimum,
                patterns=[LatestSnapshotReport.of(p, found[p]) for p in sorted(found)],
            )
        )

    return routes
