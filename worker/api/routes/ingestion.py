"""POST /api/roi-tracking/executions: publish one event, or an array of up to 1,000, to the topic.

Mounted only with ROI_API_WRITES. The body is read with a deadline and a size bound, parsed in
a worker thread and published whole or not at all (worker.api.ingest, worker.api.backends).
Besides v1 events it takes seed 000's PatternExecution body, with an optional Idempotency-Key
header that makes its retries one event (worker.api.ingest).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ...settings import Settings
from .. import security
from ..backends import Publisher
from ..errors import request_line
from ..ingest import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_RE,
    MAX_BODY_BYTES,
    SEED_EVENT_NAMESPACE,
    InvalidBodyError,
    parse_events,
)
from ..models import MAX_EVENTS_PER_REQUEST, Accepted, ErrorBody, ValidationProblem
from ..openapi import SEED_EXECUTION
from ..responses import error_response, json_response, validation_response
from .common import ROI, UNAUTHORIZED, documented

log = logging.getLogger(__name__)

# POSTs parsed or published at once. Each holds a worker thread (of anyio's 40) while it parses
# and waits for Kafka: the rest stay free for the reads and health checks, even when Kafka is
# down and clients keep retrying.
INGEST_CONCURRENCY: Final = 8


def router(kafka: Publisher, settings: Settings) -> APIRouter:
    """The POST of events to `kafka`, by the writers `settings` admits."""
    routes = APIRouter()
    admitted = anyio.CapacityLimiter(INGEST_CONCURRENCY)
    body_timeout = settings.api_body_timeout_seconds

    @routes.post(
        f"{ROI}/executions",
        status_code=202,
        response_model=Accepted,
        responses=UNAUTHORIZED
        | {
            408: documented(
                ErrorBody, "The body did not arrive within ROI_API_BODY_TIMEOUT_SECONDS."
            ),
            413: documented(ErrorBody, f"The body is over {MAX_BODY_BYTES:,} bytes."),
            415: documented(ErrorBody, "The body is not sent as application/json."),
            422: documented(
                ValidationProblem,
                "Not JSON, not an event, a seed body or an array of 1 to "
                f"{MAX_EVENTS_PER_REQUEST:,} events, events breaking the contract, or an "
                f"{IDEMPOTENCY_HEADER} the body does not take: every problem, located as "
                '["body", index, field] or ["header", "Idempotency-Key"]. Nothing was published.',
            ),
            503: documented(
                ErrorBody,
                "Kafka did not take the events in time. Some may be stored later: send the "
                "same events again (each event_id is stored once).",
            ),
        },
        tags=["roi-tracking"],
        dependencies=security.writers(settings),
        summary="Publish one execution event, or an array of up to 1,000, to the topic",
        openapi_extra={"requestBody": _events_body(), "parameters": [_idempotency_key()]},
    )
    async def executions(request: Request) -> Response:
        try:
            with anyio.fail_after(body_timeout):
                body = await _read_body(request)
        except TimeoutError:
            log.info(
                "%s %s: 408: the body did not arrive in %g s", *request_line(request), body_timeout
            )
            return error_response(
                408,
                f"the body did not arrive within {body_timeout:g} s",
                headers={"Connection": "close"},
            )
        except ClientDisconnect:
            # Nobody is left to answer: one line, not the traceback of an unhandled error.
            log.info(
                "%s %s: the client disconnected before sending its body", *request_line(request)
            )
            return Response(status_code=400)
        if body is None:
            return error_response(413, f"the body is over {MAX_BODY_BYTES:,} bytes")
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
            log.warning("%s %s: 503: %s", *request_line(request), message)
            return error_response(503, message)
        try:
            # Both in a worker thread: parsing 1,000 large events takes a CPU for a while,
            # and the event loop must keep answering meanwhile.
            try:
                key = request.headers.get(IDEMPOTENCY_HEADER)
                events = await run_in_threadpool(parse_events, body, key)
            except InvalidBodyError as exc:
                return validation_response(exc.problems)
            await run_in_threadpool(kafka.publish, events)
        finally:
            admitted.release()
        accepted = Accepted(topic=kafka.topic, event_ids=[e.event_id for e in events])
        return json_response(accepted, status_code=202)

    return routes


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
        "description": "One event (contract v1, schemas/execution-event.v1.json), an array "
        f"of 1 to {MAX_EVENTS_PER_REQUEST:,}, or one seed body (seed 000's PatternExecution: "
        "an object without schema_version, made a v1 event by the server). Amounts as JSON "
        "numbers or decimal strings; numbers are read exactly, never through a float.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        event,
                        {"$ref": f"#/components/schemas/{SEED_EXECUTION}"},
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


def _idempotency_key() -> dict[str, Any]:
    return {
        "name": IDEMPOTENCY_HEADER,
        "in": "header",
        "required": False,
        "description": "Makes the retries of a seed body one event: its event_id is "
        f'uuid5({SEED_EVENT_NAMESPACE}, pattern_id + "\\n" + key), and the '
        "worker stores each event_id once. With it, a seed body must carry executed_at. A "
        "single v1 event takes it only equal to its event_id; an array takes none. See "
        "docs/api.md.",
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_RE, "maxLength": 255},
    }
