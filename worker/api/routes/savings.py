"""GET /api/roi-tracking/savings: net savings per UTC day, week or month with running totals,
for charts (worker.roi.savings_series; docs/api.md). Reads the daily rollups only."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Query, Response

from ...contract.event import PATTERN_ID_RE
from ...roi.analytics import pattern_exists, snapshot
from ...roi.methodology import EARLIEST
from ...roi.savings_series import MAX_PERIODS, Period, default_first_day, read_savings
from ..backends import Database
from ..errors import invalid
from ..models import SavingsSeriesBody
from ..responses import json_response, unknown_pattern
from .common import DATABASE_UNAVAILABLE, INVALID_PARAMETER, ROI, UNKNOWN_PATTERN, Access

DATE_RE: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def router(db: Database, access: Access) -> APIRouter:
    """The savings series, read from `db` by those `access` admits."""
    routes = APIRouter()

    @routes.get(
        f"{ROI}/savings",
        response_model=SavingsSeriesBody,
        responses=access.responses(UNKNOWN_PATTERN | INVALID_PARAMETER | DATABASE_UNAVAILABLE),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Net savings of every pattern per UTC day, week or month, with running totals",
    )
    def savings(
        period: Annotated[
            Period, Query(description="day, week (Monday to Sunday) or calendar month")
        ] = "day",
        from_: Annotated[
            str | None,
            Query(
                alias="from",
                pattern=DATE_RE,
                description="first day, YYYY-MM-DD, not after `to`, at most "
                f"{MAX_PERIODS} periods before it (default: the first of this month by day, "
                "12 weeks or 12 months back by week or month)",
            ),
        ] = None,
        to: Annotated[
            str | None,
            Query(pattern=DATE_RE, description="last day, YYYY-MM-DD (default: today, UTC)"),
        ] = None,
        pattern_id: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=200,
                pattern=PATTERN_ID_RE,
                description="only this pattern (default: every pattern together)",
            ),
        ] = None,
    ) -> Response:
        now = datetime.now(UTC)
        last = now.date() if to is None else _day(to, "to", now.date())
        first = default_first_day(last, period) if from_ is None else _day(from_, "from", last)
        with db.connection() as conn:
            if pattern_id is not None and not pattern_exists(conn, pattern_id):
                return unknown_pattern(pattern_id)
            with snapshot(conn) as cur:
                try:
                    found = read_savings(cur, period, first, last, pattern_id=pattern_id)
                except ValueError as exc:  # more than MAX_PERIODS periods
                    raise invalid(["query", "from"], str(exc), "too_many_periods") from None
        return json_response(SavingsSeriesBody.of(now, period, first, last, found))

    return routes


def _day(text: str, name: str, latest: date) -> date:
    """The date a parameter names, from EARLIEST to `latest`; 422 otherwise."""
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise invalid(["query", name], f"{text!r} is not a valid date: {exc}", "date") from None
    if day < EARLIEST:
        raise invalid(["query", name], f"{text} is before {EARLIEST}", "date")
    if day > latest:
        bound = "today (UTC)" if name == "to" else f"to ({latest})"
        raise invalid(["query", name], f"{text} is after {bound}", "date")
    return day
