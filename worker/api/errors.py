"""How an exception raised while answering becomes a response.

422 a bad parameter (every problem listed, whether FastAPI or an endpoint found it), 503
PostgreSQL or Kafka unavailable (logged; libpq's words only in the log, as they may name the
server's address and the user), and any other HTTP error as an ErrorBody. The endpoints answer
404, 408, 413 and 415 themselves (worker.api.routes).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from ..db.connect import first_line, translate
from ..errors import BrokerUnavailableError, DatabaseUnavailableError, SchemaOutdatedError
from ..redaction import redact
from .models import FieldProblem
from .responses import error_response, validation_response

log = logging.getLogger(__name__)


class InvalidParameterError(Exception):
    """A parameter FastAPI took but an endpoint refuses (a `since` after today, too many
    buckets): answered 422 like FastAPI's own problems."""

    def __init__(self, problem: FieldProblem) -> None:
        self.problem = problem
        super().__init__(problem.msg)


def invalid(loc: list[str | int], message: str, rule: str) -> InvalidParameterError:
    """The error for the parameter at `loc` breaking `rule`."""
    return InvalidParameterError(FieldProblem(loc=loc, msg=message, type=rule))


def request_line(request: Request) -> tuple[str, str]:
    """Method and path, for a log line."""
    return request.method, request.url.path


def install(app: FastAPI) -> None:
    """Registers the handlers on `app`."""

    async def request_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101  (registered for it)
        return validation_response([_problem_of(error) for error in exc.errors()])

    async def parameter_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidParameterError)  # noqa: S101
        return validation_response([exc.problem])

    async def unavailable(request: Request, exc: Exception) -> Response:
        if isinstance(exc, psycopg.Error) and isinstance(translate(exc), SchemaOutdatedError):
            message = SchemaOutdatedError.public
        elif isinstance(exc, psycopg.Error):
            # libpq's words may name the server's address and the user: the log only.
            log.warning("%s %s: 503: database error: %s", *request_line(request), first_line(exc))
            return error_response(503, "PostgreSQL is unavailable; retry later")
        else:
            message = redact(str(exc))
        log.warning("%s %s: 503: %s", *request_line(request), message)
        return error_response(503, message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # noqa: S101
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(InvalidParameterError, parameter_invalid)
    app.add_exception_handler(HTTPException, http_error)
    for kind in (DatabaseUnavailableError, BrokerUnavailableError, psycopg.Error):
        app.add_exception_handler(kind, unavailable)


def _problem_of(error: Any) -> FieldProblem:
    value = error.get("input")
    shown = None if value is None or error.get("type") == "missing" else str(value)[:80]
    return FieldProblem(
        loc=[part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
        msg=str(error.get("msg", "is invalid")),
        type=str(error.get("type", "invalid")),
        input=shown,
    )
