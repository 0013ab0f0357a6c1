"""The endpoints of `roi-worker api` (docs/api.md) and how each error becomes a response.

Reads go through worker.roi.analytics (one REPEATABLE READ snapshot per request) and
worker.roi.report_document, the code path of `roi-worker report --format json`, so the numbers are
the report's. Only the report endpoint reads the execution-time percentiles, and only for its
one pattern: the other endpoints read nothing but the summary tables, whatever the number of
stored executions.

Errors: 404 unknown pattern, 413 body too large, 422 a bad parameter or event (every problem
listed), 503 PostgreSQL or Kafka unavailable (logged). Every response has a model in the
OpenAPI schema.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import anyio
import psycopg
from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from psycopg.rows import dict_row
from pydantic import BaseModel, SecretStr
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from worker import __version__, schemas
from worker.api import openapi, security
from worker.api.backends import Database, Publisher
from worker.api.cache import TtlCache
from worker.api.ingest import MAX_BODY_BYTES, InvalidBodyError, parse_events
from worker.api.models import (
    MAX_EVENTS_PER_REQUEST,
    Accepted,
    ErrorBody,
    FieldProblem,
    Health,
    PatternDetail,
    PatternFullReport,
    PatternSummary,
    Ranking,
    RecentExecution,
    SummaryPage,
    UsageStatsBody,
    ValidationProblem,
    scope_of,
)
from worker.contract.event import PATTERN_ID_RE
from worker.db.connect import first_line, translate
from worker.errors import BrokerUnavailableError, DatabaseUnavailableError, SchemaOutdatedError
from worker.redaction import redact
from worker.roi.analytics import (
    Analytics,
    PatternAnalytics,
    load_analytics,
    pattern_exists,
    read_analytics,
    snapshot,
)
from worker.roi.methodology import Window
from worker.roi.report_document import Overall, PatternReport, build_document
from worker.roi.usage_stats import GroupBy, TimeRange, TooManyBucketsError, load_usage_stats
from worker.settings import Settings

log = logging.getLogger(__name__)

ROI: Final = "/api/roi-tracking"
USAGE: Final = "/api/pattern-analytics"
# POSTs parsed or published at once. Each holds a worker thread (of anyio's 40) while it parses
# and waits for Kafka: the rest stay free for the reads and health checks, even when Kafka is
# down and clients keep retrying.
INGEST_CONCURRENCY: Final = 8
_SINCE_RE: Final = r"^([1-9][0-9]{0,4}d|[0-9]{4}-[0-9]{2}-[0-9]{2})$"
_RECENT: Final = """
SELECT event_id, executed_at, success, execution_time_seconds, estimated_time_seconds,
       actual_cost, estimated_cost, workflow_id, error_message
FROM pattern_executions WHERE pattern_id = %s
ORDER BY executed_at DESC, event_id DESC LIMIT %s
"""


def _problem(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"model": model, "description": description}


Responses = dict[int | str, dict[str, Any]]
_422: Responses = {
    422: _problem(ValidationProblem, "A parameter breaks its rule; each problem is listed.")
}
_503: Responses = {503: _problem(ErrorBody, "PostgreSQL is unavailable; retry later.")}
_404: Responses = {404: _problem(ErrorBody, "No execution of this pattern is stored.")}
_401: Responses = {
    401: _problem(ErrorBody, "No bearer token, or one that is not accepted (docs/api.md).")
}


@dataclass(frozen=True, slots=True)
class Access:
    """What an endpoint of a kind needs: its FastAPI dependencies and the answers they add."""

    dependencies: list[Any]
    protected: bool

    def responses(self, answers: Responses) -> Responses:
        return _401 | answers if self.protected else answers


PatternIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=PATTERN_ID_RE,
        description="1-200 characters of A-Z a-z 0-9 . _ : / - (as in the event contract)",
    ),
]
Since = Annotated[
    str | None,
    Query(
        pattern=_SINCE_RE,
        description="Only executions since: `7d`, `30d`, `90d` (today and the N-1 UTC days "
        "before) or a date YYYY-MM-DD, compared with the previous window of the same length. "
        "Default: all time.",
    ),
]
MinExecutions = Annotated[
    int | None,
    Query(ge=1, le=1_000_000, description="executions needed to be rated (default 10)"),
]
RankingLimit = Annotated[int, Query(ge=1, le=100, description="patterns at most")]


def create_app(
    settings: Settings, *, database: Database | None = None, publisher: Publisher | None = None
) -> FastAPI:
    """The application; opens the pool at start-up and closes both backends at shutdown."""
    db = database or Database(settings.database_url.get_secret_value(), settings.api_db_pool_size)
    kafka = publisher or Publisher(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        del app
        db.open()
        try:
            yield
        finally:
            await run_in_threadpool(kafka.close)
            await run_in_threadpool(db.close)

    app = FastAPI(
        title="roi-worker API",
        version=__version__,
        description="ROI of automation patterns, read from the summaries roi-worker keeps, and "
        "HTTP ingestion of execution events. Decimals are JSON strings. See docs/api.md.",
        lifespan=lifespan,
    )
    _errors(app)
    readers = Access(security.readers(settings), security.reads_protected(settings))
    _reads(app, settings, db, readers)
    _usage(app, db, readers)
    if settings.api_writes:
        _ingestion(app, kafka, settings)
    _health(app, db)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    return app


# --------------------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class _AllPatterns:
    """Every pattern's analytics (no percentiles) and their summaries, shared by readers."""

    analytics: Analytics
    summaries: dict[str, PatternSummary]
    overall: Overall

    def pick(self, patterns: list[PatternAnalytics]) -> list[PatternSummary]:
        return [self.summaries[p.pattern_id] for p in patterns]


def _reads(app: FastAPI, settings: Settings, db: Database, access: Access) -> None:
    # Keyed by what the answer depends on (the window's days and min_executions), parsed and
    # checked first: a bad `since` never reaches the cache, and `7d` shares with its date.
    cache: TtlCache[tuple[Window, int], _AllPatterns] = TtlCache(settings.api_cache_seconds)

    def analytics(
        since: str | None, min_executions: int | None, *, pattern_id: str | None = None
    ) -> Analytics:
        return load(_window(since), min_executions or settings.min_executions, pattern_id)

    def load(window: Window, minimum: int, pattern_id: str | None = None) -> Analytics:
        with db.connection() as conn:
            return load_analytics(
                conn,
                window,
                minimum,
                datetime.now(UTC),
                pattern_id=pattern_id,
                percentiles=False,
            )

    def all_patterns(since: str | None, min_executions: int | None) -> _AllPatterns:
        def compute() -> _AllPatterns:
            found = load(window, minimum)
            return _AllPatterns(
                found,
                {p.pattern_id: PatternSummary.from_analytics(p) for p in found.patterns},
                build_document(found, "summary", [], 1).overall,
            )

        window, minimum = _window(since), min_executions or settings.min_executions
        return cache.get((window, minimum), compute)

    @app.get(
        f"{ROI}/summary",
        response_model=SummaryPage,
        responses=access.responses(_422 | _503),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Every pattern's summary, a page at a time, ordered by pattern_id",
    )
    def summary(
        since: Since = None,
        min_executions: MinExecutions = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="patterns per page")] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000, description="patterns to skip")] = 0,
    ) -> Response:
        every = all_patterns(since, min_executions)
        found = every.analytics
        return _json(
            SummaryPage(
                **scope_of(found),
                total=len(found.patterns),
                limit=limit,
                offset=offset,
                overall=every.overall,
                patterns=every.pick(list(found.patterns[offset : offset + limit])),
            )
        )

    @app.get(
        f"{ROI}/pattern/{{pattern_id:path}}",
        response_model=PatternDetail,
        responses=access.responses(_404 | _422 | _503),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="One pattern's summary",
    )
    def pattern(
        pattern_id: PatternIdPath, since: Since = None, min_executions: MinExecutions = None
    ) -> Response:
        found = analytics(since, min_executions, pattern_id=pattern_id)
        one = found.find(pattern_id)
        if one is None:
            return _unknown(pattern_id)
        return _json(PatternDetail(**scope_of(found), pattern=PatternSummary.from_analytics(one)))

    @app.get(
        f"{ROI}/report/{{pattern_id:path}}",
        response_model=PatternFullReport,
        responses=access.responses(_404 | _422 | _503),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Everything about one pattern: figures, rating, recommendation, Wilson bound, "
        "trend, execution-time percentiles and its latest executions",
    )
    def report(
        pattern_id: PatternIdPath,
        since: Since = None,
        min_executions: MinExecutions = None,
        recent: Annotated[
            int, Query(ge=0, le=100, description="latest executions to list, newest first")
        ] = 10,
    ) -> Response:
        window = _window(since)
        with db.connection() as conn, snapshot(conn) as cur:
            found = read_analytics(
                cur,
                window,
                min_executions or settings.min_executions,
                datetime.now(UTC),
                pattern_id=pattern_id,
                percentiles=True,  # for this one pattern only: an index range, not a table scan
            )
            one = found.find(pattern_id)
            if one is None:
                return _unknown(pattern_id)
            cur.row_factory = dict_row
            rows = cur.execute(_RECENT, (pattern_id, recent)).fetchall()
        return _json(
            PatternFullReport(
                **scope_of(found),
                pattern=PatternReport.from_analytics(one),
                recent_executions=[RecentExecution.of_row(row) for row in rows],
            )
        )

    def ranking(
        pick: Callable[[Analytics, int], list[PatternAnalytics]],
    ) -> Callable[[Since, MinExecutions, RankingLimit], Response]:
        def endpoint(
            since: Since = None, min_executions: MinExecutions = None, limit: RankingLimit = 10
        ) -> Response:
            every = all_patterns(since, min_executions)
            return _json(
                Ranking(
                    **scope_of(every.analytics),
                    limit=limit,
                    patterns=every.pick(pick(every.analytics, limit)),
                )
            )

        return endpoint

    app.get(
        f"{ROI}/top-performers",
        response_model=Ranking,
        responses=access.responses(_422 | _503),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Patterns rated acceptable or better, highest ROI first",
        operation_id="top_performers",
    )(ranking(Analytics.top_performers))
    app.get(
        f"{ROI}/underperformers",
        response_model=Ranking,
        responses=access.responses(_422 | _503),
        tags=["roi-tracking"],
        dependencies=access.dependencies,
        summary="Patterns rated poor or failed, lowest ROI first",
        operation_id="underperformers",
    )(ranking(Analytics.underperformers))


def _window(since: str | None) -> Window:
    try:
        return Window.parse(since, datetime.now(UTC).date())
    except ValueError as exc:
        raise _InvalidParameterError(
            FieldProblem(loc=["query", "since"], msg=str(exc), type="since", input=since)
        ) from None


# --------------------------------------------------------------------------- usage


def _usage(app: FastAPI, db: Database, access: Access) -> None:
    @app.get(
        f"{USAGE}/usage-stats",
        response_model=UsageStatsBody,
        responses=access.responses(_404 | _422 | _503),
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
                return _unknown(pattern_id)
            try:
                stats = load_usage_stats(
                    conn, datetime.now(UTC), time_range, group_by, pattern_id=pattern_id
                )
            except TooManyBucketsError as exc:
                raise _invalid(["query", "group_by"], str(exc), "too_many_buckets") from None
        return _json(UsageStatsBody.of(stats))


# --------------------------------------------------------------------------- ingestion


def _ingestion(app: FastAPI, kafka: Publisher, settings: Settings) -> None:
    admitted = anyio.CapacityLimiter(INGEST_CONCURRENCY)
    body_timeout = settings.api_body_timeout_seconds

    @app.post(
        f"{ROI}/executions",
        status_code=202,
        response_model=Accepted,
        responses=_401
        | {
            408: _problem(
                ErrorBody, "The body did not arrive within ROI_API_BODY_TIMEOUT_SECONDS."
            ),
            413: _problem(ErrorBody, f"The body is over {MAX_BODY_BYTES:,} bytes."),
            415: _problem(ErrorBody, "The body is not sent as application/json."),
            422: _problem(
                ValidationProblem,
                "Not JSON, not an event or an array of 1 to "
                f"{MAX_EVENTS_PER_REQUEST:,} events, or events breaking the contract: every "
                'problem, located as ["body", index, field]. Nothing was published.',
            ),
            503: _problem(
                ErrorBody,
                "Kafka did not take the events in time. Some may be stored later: send the "
                "same events again (each event_id is stored once).",
            ),
        },
        tags=["roi-tracking"],
        dependencies=security.writers(settings),
        summary="Publish one execution event, or an array of up to 1,000, to the topic",
        openapi_extra={"requestBody": _events_body()},
    )
    async def executions(request: Request) -> Response:
        try:
            with anyio.fail_after(body_timeout):
                body = await _read_body(request)
        except TimeoutError:
            log.info("%s %s: 408: the body did not arrive in %g s", *_line(request), body_timeout)
            return _error(
                408,
                f"the body did not arrive within {body_timeout:g} s",
                headers={"Connection": "close"},
            )
        except ClientDisconnect:
            # Nobody is left to answer: one line, not the traceback of an unhandled error.
            log.info("%s %s: the client disconnected before sending its body", *_line(request))
            return Response(status_code=400)
        if body is None:
            return _error(413, f"the body is over {MAX_BODY_BYTES:,} bytes")
        # Waits for its turn at most as long as for Kafka; only the wait is cancelled, never
        # a publish under way (its answer would be lost).
        turn = False
        with anyio.move_on_after(kafka.timeout):
            await admitted.acquire()
            turn = True
        if not turn:
            message = (
                f"Kafka is slow to take events: {INGEST_CONCURRENCY} requests are being "
                "published already; retry later"
            )
            log.warning("%s %s: 503: %s", request.method, request.url.path, message)
            return _error(503, message)
        try:
            # Both in a worker thread: parsing 1,000 large events takes a CPU for a while,
            # and the event loop must keep answering meanwhile.
            try:
                events = await run_in_threadpool(parse_events, body)
            except InvalidBodyError as exc:
                return _validation(exc.problems)
            await run_in_threadpool(kafka.publish, events)
        finally:
            admitted.release()
        accepted = Accepted(topic=kafka.topic, event_ids=[e.event_id for e in events])
        return _json(accepted, status_code=202)


def _line(request: Request) -> tuple[str, str]:
    return request.method, request.url.path


async def _read_body(request: Request) -> bytes | None:
    """The body, or None as soon as it is over MAX_BODY_BYTES (never read whole)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _events_body() -> dict[str, Any]:
    event = {"$ref": "#/components/schemas/ExecutionEvent"}
    return {
        "required": True,
        "description": "One event (contract v1, schemas/execution-event.v1.json) or an array "
        f"of 1 to {MAX_EVENTS_PER_REQUEST:,}. Amounts as JSON numbers or decimal strings; "
        "numbers are read exactly, never through a float.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        event,
                        {
                            "type": "array",
                            "items": event,
                            "minItems": 1,
                            "maxItems": MAX_EVENTS_PER_REQUEST,
                        },
                    ]
                }
            }
        },
    }


# --------------------------------------------------------------------------- health


def _health(app: FastAPI, db: Database) -> None:
    @app.get("/healthz", response_model=Health, tags=["health"], summary="The process answers")
    async def healthz() -> Health:  # on the event loop: it needs no thread, so none can starve it
        return Health(status="alive")

    @app.get(
        "/readyz",
        response_model=Health,
        responses={503: _problem(ErrorBody, "PostgreSQL is unavailable.")},
        tags=["health"],
        summary="PostgreSQL answers (Kafka is needed only by POST)",
    )
    def readyz() -> Health:
        with db.connection() as conn:
            conn.execute("SELECT 1")
        return Health(status="ready")


# --------------------------------------------------------------------------- errors


class _InvalidParameterError(Exception):
    def __init__(self, problem: FieldProblem) -> None:
        self.problem = problem
        super().__init__(problem.msg)


def _invalid(loc: list[str | int], message: str, rule: str) -> _InvalidParameterError:
    return _InvalidParameterError(FieldProblem(loc=loc, msg=message, type=rule))


def _errors(app: FastAPI) -> None:
    async def request_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101  (registered for it)
        return _validation([_problem_of(error) for error in exc.errors()])

    async def parameter_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _InvalidParameterError)  # noqa: S101
        return _validation([exc.problem])

    async def unavailable(request: Request, exc: Exception) -> Response:
        if isinstance(exc, psycopg.Error) and isinstance(translate(exc), SchemaOutdatedError):
            message = SchemaOutdatedError.public
        elif isinstance(exc, psycopg.Error):
            # libpq's words may name the server's address and the user: the log only.
            log.warning("%s %s: 503: database error: %s", *_line(request), first_line(exc))
            return _error(503, "PostgreSQL is unavailable; retry later")
        else:
            message = redact(str(exc))
        log.warning("%s %s: 503: %s", *_line(request), message)
        return _error(503, message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # noqa: S101
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)

    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(_InvalidParameterError, parameter_invalid)
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


def _unknown(pattern_id: str) -> Response:
    return _error(404, f"no pattern {pattern_id!r}: no execution of it is stored")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _json(ErrorBody(detail=message), status_code=status, headers=headers)


def _validation(problems: list[FieldProblem]) -> Response:
    return _json(ValidationProblem(detail=problems), status_code=422)


def _json(
    model: BaseModel, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    # The model's own JSON (decimals as strings, as in the report), serialised once: FastAPI
    # would validate and serialise the response again.
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


# --------------------------------------------------------------------------- OpenAPI


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document /openapi.json serves, built without any service."""
    settings = Settings.model_construct(database_url=SecretStr("postgresql://localhost/openapi"))
    return create_app(settings).openapi()


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the event contract the POST body refers to and the rules
    FastAPI cannot write (worker.api.openapi); cached."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        event = {
            k: v for k, v in schemas.execution_event_schema().items() if k not in ("$schema", "$id")
        }
        document.setdefault("components", {}).setdefault("schemas", {})["ExecutionEvent"] = event
        openapi.state_rules(document)
        app.openapi_schema = document
    return app.openapi_schema
