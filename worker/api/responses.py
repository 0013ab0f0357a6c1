"""How every endpoint answers: a model's own JSON, serialised once, and the error bodies.

The endpoints return a Response built here rather than the model: FastAPI would validate and
serialise it again, and the model's own JSON writes decimals as strings, as the report does
(docs/api.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Response
from pydantic import BaseModel

from .models import ErrorBody, FieldProblem, ValidationProblem


def json_response(
    model: BaseModel, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """`model` as its own JSON."""
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """An ErrorBody: what went wrong, in one sentence."""
    return json_response(ErrorBody(detail=message), status_code=status, headers=headers)


def validation_response(problems: list[FieldProblem]) -> Response:
    """422 listing every broken rule."""
    return json_response(ValidationProblem(detail=problems), status_code=422)


def unknown_pattern(pattern_id: str) -> Response:
    """404 for a pattern of which no execution is stored."""
    return error_response(404, f"no pattern {pattern_id!r}: no execution of it is stored")
