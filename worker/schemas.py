"""The published JSON Schemas, generated from the pydantic models (never edited by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .contract import event
from .roi.executive import ExecutiveSummary
from .roi.rating_state import event_schema as rating_event_schema
from .roi.report_document import ReportDocument

EXECUTION_EVENT_V1 = "execution-event.v1.json"
ROI_REPORT_V1 = "roi-report.v1.json"
ROI_API_V1 = "roi-api.v1.json"
PATTERN_RATING_CHANGED_V1 = "pattern-rating-changed.v1.json"
ROI_EXECUTIVE_SUMMARY_V1 = "roi-executive-summary.v1.json"


def execution_event_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of event contract v1."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:roi-worker:schema:execution-event:v1",
        **event.json_schema(),
    }


def roi_report_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of `roi-worker report --format json` (docs/reports.md)."""
    schema = ReportDocument.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:roi-worker:schema:roi-report:v1",
        **schema,
    }


def roi_executive_summary_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of `roi-worker report --executive --format json`, which GET
    /api/roi-tracking/executive-summary also answers (docs/reports.md)."""
    schema = ExecutiveSummary.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:roi-worker:schema:roi-executive-summary:v1",
        **schema,
    }


def roi_api_schema() -> dict[str, Any]:
    """The OpenAPI document of `roi-worker api`, as it serves it at /openapi.json (docs/api.md)."""
    # Imported here: FastAPI takes a tenth of a second to load, which no other command needs.
    from .api.app import openapi_document  # noqa: PLC0415

    return openapi_document()


def render(schema: dict[str, Any]) -> str:
    """The stable text of a schema file: sorted keys, two-space indent, final newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def published() -> dict[str, str]:
    """File name under schemas/ -> the text it must hold."""
    return {
        EXECUTION_EVENT_V1: render(execution_event_schema()),
        ROI_REPORT_V1: render(roi_report_schema()),
        ROI_API_V1: render(roi_api_schema()),
        PATTERN_RATING_CHANGED_V1: render(rating_event_schema()),
        ROI_EXECUTIVE_SUMMARY_V1: render(roi_executive_summary_schema()),
    }


def write_all(directory: Path) -> list[Path]:
    """Writes every published schema into `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in published().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
