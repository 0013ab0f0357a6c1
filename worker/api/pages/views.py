"""GET / and /patterns/{pattern_id}: the dashboard and a pattern's page, server-rendered; and
GET /fragments/dashboard and /fragments/patterns/{pattern_id}: their figures' sections alone,
which the page's script swaps in when the live stream says the figures changed.

The figures are read as the JSON endpoints read them and shown as the strings those give:
the dashboard is the report's summary document (worker.roi.report_document.build_document with
the month to date and the latest snapshots, in one REPEATABLE READ snapshot), a pattern's page
GET /report/{id}'s and GET /snapshots/{id}'s answers (worker.api.routes.patterns,
worker.roi.snapshots). Nothing is computed here.

Access: the pages themselves are always served; with ROI_API_READ_TOKENS set they carry no
figure and the script asks for a token, then reads the fragments (which need it, like every
read) with it. A browser cannot send a bearer token when it opens a page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from psycopg.rows import tuple_row

from ...errors import DatabaseUnavailableError
from ...roi.analytics import read_analytics, snapshot
from ...roi.methodology import Rating
from ...roi.report_document import PatternSnapshotsReport, build_document
from ...roi.snapshots import load_snapshots
from ...roi.tracking import read_tracking
from ...settings import Settings
from ..backends import Database
from ..cache import TtlCache
from ..routes.common import ROI, Access
from ..routes.patterns import PatternIdPath, read_full_report, window_of
from . import formatting
from .assets import PLOTLY, PLOTLY_CSS, Assets, plotly_style_ids
from .security_headers import PAGE_HEADERS

log = logging.getLogger(__name__)

UNDERPERFORMERS: Final = 10  # listed on the dashboard, lowest ROI first (as /underperformers)
RECENT: Final = 20  # executions listed on a pattern's page, newest first
FRAGMENTS: Final = "/fragments"
# The patterns table's columns: (data-column, heading). The names are the API's fields.
COLUMNS: Final = (
    ("pattern_id", "Pattern"),
    ("rating", "Rating and what to do"),
    ("success_rate", "Success rate"),
    ("wilson_lower_bound", "Wilson lower bound"),
    ("roi_percentage", "ROI"),
    ("cost_saved_usd", "Net savings"),
    ("executions", "Executions"),
    ("trend", "Trend"),
    ("flags", "Flags"),
    ("snapshot_status", "Snapshot"),
)
RATINGS: Final = tuple(rating.value for rating in Rating)


@dataclass(frozen=True, slots=True)
class Shown:
    """What a page shows: its figures (None when read tokens hide them, or unavailable)."""

    read_at: datetime | None
    figures: dict[str, Any] | None
    problem: str | None = None


def templates() -> Environment:
    """The page templates (worker/api/templates/), escaping every value, with the filters of
    worker.api.pages.formatting."""
    environment = Environment(
        loader=PackageLoader("worker.api", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        grouped=formatting.grouped,
        money=formatting.money,
        percent=formatting.percent,
        rate=formatting.fraction_as_percent,
        rounded_money=formatting.rounded_money,
        words=formatting.words,
    )
    return environment


def read_dashboard(db: Database, minimum: int) -> dict[str, Any]:
    """The report's summary document as JSON values (the API's strings), with each pattern's
    latest snapshot status and the underperformers' entries beside it."""
    now = datetime.now(UTC)
    with db.connection() as conn, snapshot(conn) as cur:
        analytics = read_analytics(cur, window_of(None), minimum, now, percentiles=False)
        tracking = read_tracking(cur, now, minimum)
    document = build_document(
        analytics, "summary", list(analytics.patterns), UNDERPERFORMERS, tracking=tracking
    ).model_dump(mode="json")
    statuses = {entry["pattern_id"]: entry for entry in document["latest_snapshots"] or []}
    by_id = {pattern["pattern_id"]: pattern for pattern in document["patterns"]}
    return {
        **document,
        "statuses": statuses,
        "underperforming": [by_id[pattern_id] for pattern_id in document["underperformers"]],
    }


def read_pattern(db: Database, minimum: int, pattern_id: str) -> dict[str, Any] | None:
    """GET /report/{id}?recent=RECENT's and GET /snapshots/{id}'s answers as JSON values;
    None when no execution of the pattern is stored."""
    now = datetime.now(UTC)
    with db.connection() as conn, snapshot(conn) as cur:
        report = read_full_report(cur, window_of(None), minimum, pattern_id, RECENT)
        if report is None:
            return None
        cur.row_factory = tuple_row  # read_full_report left dict rows
        found = load_snapshots(cur, now.date(), minimum, pattern_ids=[pattern_id])
    snapshots = found.get(pattern_id)
    return {
        "report": report.model_dump(mode="json"),
        "snapshots": None
        if snapshots is None
        else PatternSnapshotsReport.of(snapshots).model_dump(mode="json"),
    }


def router(settings: Settings, db: Database, access: Access, assets: Assets) -> APIRouter:
    """The pages and their fragments, reading `db`; the fragments need what `access` asks."""
    routes = APIRouter(include_in_schema=False)
    environment = templates()
    minimum = settings.min_executions
    style_ids: list[str] = []  # read with the script, at the first page served

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        if not style_ids:
            style_ids.extend(plotly_style_ids() or [""])
        page = environment.get_template(name).render(
            plotly_style_ids=[i for i in style_ids if i],
            css=assets.url("dashboard.css"),
            js=assets.url("dashboard.js"),
            plotly=assets.url(PLOTLY),
            plotly_css=assets.url(PLOTLY_CSS),
            refresh_seconds=f"{settings.dashboard_refresh_seconds:g}",
            token_required=access.protected,
            roi=ROI,
            fragments=FRAGMENTS,
            columns=COLUMNS,
            ratings=RATINGS,
            **context,
        )
        headers = {**PAGE_HEADERS, "Cache-Control": "no-store"}
        return HTMLResponse(page, status_code=status, headers=headers)

    # Every open page re-reads its figures on each live event: readers within
    # ROI_API_CACHE_SECONDS of each other share one read (and its time), as the JSON routes do.
    cache: TtlCache[tuple[Any, ...], tuple[datetime, Any]] = TtlCache(settings.api_cache_seconds)

    def read_shared(read: Any, *arguments: Any) -> tuple[datetime, Any]:
        return cache.get(
            (read, *arguments), lambda: (datetime.now(UTC), read(db, minimum, *arguments))
        )

    async def shown(read: Any, *arguments: Any) -> Shown:
        try:
            moment, figures = await run_in_threadpool(read_shared, read, *arguments)
        except DatabaseUnavailableError as exc:  # others: worker.api.errors' 503 (JSON)
            log.warning("dashboard page: 503: the figures cannot be read: %s", type(exc).__name__)
            return Shown(None, None, "PostgreSQL is unavailable: the figures cannot be read.")
        return Shown(moment, figures)

    def read_at(moment: datetime | None) -> str:
        return "" if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")

    @routes.get("/")
    async def dashboard() -> HTMLResponse:
        if access.protected:
            return render("dashboard.html", data=None, read_at="", problem=None)
        found = await shown(read_dashboard)
        status = 503 if found.problem else 200
        return render(
            "dashboard.html",
            status,
            data=found.figures,
            read_at=read_at(found.read_at),
            problem=found.problem,
        )

    @routes.get(FRAGMENTS + "/dashboard", dependencies=access.dependencies)
    async def dashboard_sections() -> HTMLResponse:
        found = await shown(read_dashboard)
        if found.problem:
            return render("problem.html", 503, problem=found.problem)
        return render("dashboard_sections.html", data=found.figures, read_at=read_at(found.read_at))

    @routes.get("/patterns/{pattern_id:path}")
    async def pattern(pattern_id: PatternIdPath) -> HTMLResponse:
        if access.protected:
            return render(
                "pattern.html", pattern_id=pattern_id, data=None, read_at="", problem=None
            )
        found = await shown(read_pattern, pattern_id)
        if found.problem is None and found.figures is None:
            return render("not_found.html", 404, pattern_id=pattern_id, read_at="")
        return render(
            "pattern.html",
            503 if found.problem else 200,
            pattern_id=pattern_id,
            data=found.figures,
            read_at=read_at(found.read_at),
            problem=found.problem,
        )

    @routes.get(FRAGMENTS + "/patterns/{pattern_id:path}", dependencies=access.dependencies)
    async def pattern_sections(pattern_id: PatternIdPath) -> Response:
        found = await shown(read_pattern, pattern_id)
        if found.problem:
            return render("problem.html", 503, problem=found.problem)
        if found.figures is None:
            return render("not_found.html", 404, pattern_id=pattern_id, read_at="")
        return render(
            "pattern_sections.html",
            pattern_id=pattern_id,
            data=found.figures,
            read_at=read_at(found.read_at),
        )

    return routes
