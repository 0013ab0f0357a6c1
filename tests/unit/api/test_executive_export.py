"""GET /api/roi-tracking/executive-summary's answers (worker.api.routes.executive.export): each
format in its media type, PDF and CSV as attachments named after the month."""

from __future__ import annotations

import json

import pytest

from tests.unit.roi.test_executive import SUMMARY
from worker.api.routes.executive import ExportFormat, export
from worker.roi.executive_render import render


@pytest.mark.parametrize(
    ("output", "media_type", "attachment"),
    [
        ("json", "application/json", None),
        ("pdf", "application/pdf", 'attachment; filename="roi-executive-summary-2026-12.pdf"'),
        (
            "csv",
            "text/csv; charset=utf-8",
            'attachment; filename="roi-executive-summary-2026-12.csv"',
        ),
        ("md", "text/markdown; charset=utf-8", None),
    ],
)
def test_each_format_has_its_media_type(
    output: ExportFormat, media_type: str, attachment: str | None
) -> None:
    """The Content-Type a client sees, and Content-Disposition only where a download is meant."""
    answer = export(SUMMARY, output)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == media_type
    assert answer.headers.get("content-disposition") == attachment


def test_the_bodies_are_the_renderers() -> None:
    """JSON is the document, CSV and Markdown the text forms, PDF a PDF."""
    assert json.loads(bytes(export(SUMMARY, "json").body)) == json.loads(render(SUMMARY, "json"))
    assert bytes(export(SUMMARY, "csv").body).decode() == render(SUMMARY, "csv")
    assert bytes(export(SUMMARY, "md").body).decode() == render(SUMMARY, "markdown")
    assert bytes(export(SUMMARY, "pdf").body).startswith(b"%PDF-")
