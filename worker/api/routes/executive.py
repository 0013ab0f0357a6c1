"""GET /api/roi-tracking/executive-summary: seed 002's one-page summary for leadership, as PDF,
CSV, Markdown or JSON (docs/api.md; docs/reports.md, "Executive summary").

The same read and the same document as `roi-worker report --executive` (worker.roi.executive):
the summary tables and the month to date, in one REPEATABLE READ snapshot per request. PDF and
CSV come as attachments named after the month, for browsers to download.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Query, Response

from ...roi.executive import ExecutiveSummary, Period, load_summary
from ...roi.executive_render import render
from ...settings import Settings
from ..backends import Database
from ..responses import json_response
from .common import DATABASE_UNAVAILABLE, INVALID_PARAMETER, ROI, Access
from .patterns import MinExecutions

ExportFormat = Literal["json", "pdf", "csv", "md"]
MEDIA_TYPES: Final[dict[ExportFormat, str]] = {
    "json": "application/json",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
}
TEXT_SCHEMA: Final = {"schema": {"type": "string"}}
EXPORTS: Final = {
    200: {
        "description": "The summary in the format asked for; PDF and CSV as an attachment "
        "(Content-Disposition) named roi-executive-summary-YYYY-MM.pdf or .csv.",
        "content": {
            MEDIA_TYPES["pdf"].split(";")[0]: {"schema": {"type": "string", "format": "binary"}},
            MEDIA_TYPES["csv"].split(";")[0]: TEXT_SCHEMA,
            MEDIA_TYPES["md"].split(";")[0]: TEXT_SCHEMA,
        },
    }
}


def router(settings: Settings, db: Database, access: Access) -> APIRouter:
    """The executive summary, read from `db` by those `access` admits."""
    routes = APIRouter()

    @routes.get(
        f"{ROI}/executive-summary",
        response_model=ExecutiveSummary,
        responses=access.responses(EXPORTS | INVALID_PARAMETER | DATABASE_UNAVAILABLE),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="One page for leadership: savings this month and their projection, "
        "productivity, the best and worst patterns with what to do (PDF, CSV, Markdown, JSON)",
    )
    def executive_summary(
        period: Annotated[
            Period, Query(description="month: the current UTC calendar month to date")
        ] = "month",
        output: Annotated[
            ExportFormat,
            Query(alias="format", description="pdf, csv, md (Markdown) or json"),
        ] = "json",
        min_executions: MinExecutions = None,
    ) -> Response:
        minimum = min_executions or settings.min_executions
        with db.connection() as conn:
            summary = load_summary(conn, period, datetime.now(UTC), minimum)
        return export(summary, output)

    return routes


def export(summary: ExecutiveSummary, output: ExportFormat) -> Response:
    """The summary as a response in `output`'s media type."""
    if output == "json":
        return json_response(summary)
    name = f"roi-executive-summary-{summary.period.start:%Y-%m}.{output}"
    if output == "pdf":
        # fpdf2 takes a third of a second to import: only the first PDF asked for pays it.
        from ...roi.executive_pdf import render_pdf  # noqa: PLC0415

        return Response(render_pdf(summary), media_type=MEDIA_TYPES["pdf"], headers=_attach(name))
    if output == "csv":
        body = render(summary, "csv")
        return Response(body, media_type=MEDIA_TYPES["csv"], headers=_attach(name))
    return Response(render(summary, "markdown"), media_type=MEDIA_TYPES["md"])


def _attach(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}
