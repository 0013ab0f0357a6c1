"""A POSTed body -> validated events, or every problem with it, each naming its place.

The body is parsed with the events' own strict JSON (numbers are exact Decimals, never floats)
and each event is validated by worker.contract.validate, the worker's own validate stage:
whatever it accepts, the worker stores.

Two bodies are taken, told apart by one key: an object with `schema_version` is a v1 event;
an object without it is seed 000's PatternExecution (models.SeedExecution), made a v1 event
here. Its event_id is derived from the Idempotency-Key header (SEED_EVENT_NAMESPACE), so a
retry is the same event and the worker stores it once; without the header it is a new uuid4.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from ..contract import json_codec
from ..contract.event import SCHEMA_VERSION, ExecutionEvent
from ..contract.validate import validate
from ..errors import InvalidEventError
from .models import MAX_EVENTS_PER_REQUEST, FieldProblem, SeedExecution

MAX_BODY_BYTES: Final = 16 * 1024 * 1024  # 1,000 events of the largest valid size fit
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
# 1 to 255 printable ASCII characters, not starting or ending with a space.
IDEMPOTENCY_KEY_RE: Final = r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$"
_IDEMPOTENCY_KEY: Final = re.compile(IDEMPOTENCY_KEY_RE)
# A seed body's event_id with an Idempotency-Key: uuid5(SEED_EVENT_NAMESPACE, pattern_id + "\n"
# + key). Fixed forever: changing it would make a retry across the change a new event.
SEED_EVENT_NAMESPACE: Final = uuid.UUID("5a16f2d3-cf08-4888-a373-bc15f88dccee")
_SEED_FIELDS: Final = frozenset(SeedExecution.model_fields)
_WORKFLOW_IDS: Final = range(-(2**63), 2**63)  # models.SeedWorkflowId's bounds
_HEADER_LOC: Final[list[str | int]] = ["header", IDEMPOTENCY_HEADER]


class InvalidBodyError(ValueError):
    """The body is not one valid event or an array of 1 to 1,000 of them."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.loc}: {p.msg}" for p in problems))


def seed_event_id(pattern_id: str, idempotency_key: str) -> uuid.UUID:
    """The event_id of a seed body POSTed with this Idempotency-Key: the same for every retry,
    and distinct per pattern (a key reused for another pattern is another event)."""
    return uuid.uuid5(SEED_EVENT_NAMESPACE, f"{pattern_id}\n{idempotency_key}")


def parse_events(
    body: bytes, idempotency_key: str | None = None, *, now: datetime | None = None
) -> list[ExecutionEvent]:
    """The events of a body holding one event object, a JSON array of them, or one seed body.

    `idempotency_key` (the header's value) names one event: a seed body's event_id is derived
    from it, and a v1 event's event_id must equal it (an array takes none). `now` is a seed
    body's default executed_at (the current time, UTC). Raises InvalidBodyError listing every
    problem: of the header, of the body as a whole, or of each event (its `loc` is
    ["body", index, field], or ["body", field] for a single object).
    """
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise InvalidBodyError(
            [
                FieldProblem(
                    loc=_HEADER_LOC,
                    msg="must be 1 to 255 printable ASCII characters, without a space at "
                    "either end",
                    type="idempotency_key",
                    input=idempotency_key[:100],
                )
            ]
        )
    document = _json(body)
    if isinstance(document, dict):
        if "schema_version" not in document:
            return [_seed_event(document, idempotency_key, now or datetime.now(UTC))]
        event = _event(document, ("body",))
        if idempotency_key is not None and _as_uuid(idempotency_key) != event.event_id:
            raise _header(
                "differs from the event's event_id: a v1 event's event_id is its idempotency "
                "key (leave the header out, or send the event_id)"
            )
        return [event]
    if not isinstance(document, list):
        raise _whole("must be an event object or an array of event objects", "body_type")
    if idempotency_key is not None:
        raise _header(
            "names one event: an array of v1 events takes none (each event_id is its "
            "idempotency key)"
        )
    if not document:
        raise _whole("must hold at least one event", "too_short")
    if len(document) > MAX_EVENTS_PER_REQUEST:
        raise _whole(
            f"holds {len(document):,} events; at most {MAX_EVENTS_PER_REQUEST:,} per request "
            "(split it into several requests)",
            "too_long",
        )
    events: list[ExecutionEvent] = []
    problems: list[FieldProblem] = []
    for index, item in enumerate(document):
        try:
            if not isinstance(item, dict):
                raise InvalidBodyError(
                    [
                        FieldProblem(
                            loc=["body", index], msg="must be an object", type="not_an_object"
                        )
                    ]
                )
            events.append(_event(item, ("body", index)))
        except InvalidBodyError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidBodyError(problems)
    return events


def _json(body: bytes) -> Any:
    try:
        return json_codec.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _whole(f"is not UTF-8 (byte {exc.start})", "not_utf8") from None
    except json_codec.JsonError as exc:
        raise _whole(f"is not valid JSON: {exc}", "invalid_json") from None


def _event(document: dict[str, Any], where: tuple[str | int, ...]) -> ExecutionEvent:
    try:
        return validate(document)
    except InvalidEventError as exc:
        raise InvalidBodyError(
            [
                FieldProblem(
                    loc=[*where, *error.field.split(".")],
                    msg=error.message,
                    type=error.rule,
                    input=error.value,
                )
                for error in exc.errors
            ]
        ) from None


def _seed_event(
    document: dict[str, Any], idempotency_key: str | None, now: datetime
) -> ExecutionEvent:
    """Seed 000's PatternExecution as a v1 event; raises InvalidBodyError with every problem
    of its fields (the contract's own, located at ["body", field])."""
    problems = [_not_a_seed_field(name) for name in document if name not in _SEED_FIELDS]
    if document.get("id") is not None:
        problems.append(
            _seed_problem(
                "id",
                "must be absent or null: the store assigns no id here; an execution is "
                "identified by its event_id (retry with an Idempotency-Key header)",
                document["id"],
            )
        )
    if idempotency_key is not None and document.get("executed_at") is None:
        problems.append(
            _seed_problem(
                "executed_at",
                "is required with an Idempotency-Key: a retry must be the same event, and "
                "the default (now) differs on every attempt",
                None,
            )
        )
    v1: dict[str, Any] = {
        name: value
        for name, value in document.items()
        if name in _SEED_FIELDS and name != "id" and value is not None
    }
    workflow_id = v1.get("workflow_id")
    if (
        isinstance(workflow_id, Decimal)
        and -(2**63) <= workflow_id < 2**63  # first: int() of 1E+999999999 takes forever
        and workflow_id == workflow_id.to_integral_value()
    ):
        workflow_id = int(workflow_id)  # 1842.0 or 1.842e3: integers in JSON Schema too
    if type(workflow_id) is int:
        if workflow_id not in _WORKFLOW_IDS:
            problems.append(
                _seed_problem("workflow_id", "as an integer must be within 64 bits", workflow_id)
            )
        v1["workflow_id"] = str(workflow_id)
    pattern_id = v1.get("pattern_id")
    event_id = (
        seed_event_id(pattern_id, idempotency_key)
        if idempotency_key is not None and isinstance(pattern_id, str)
        else uuid.uuid4()
    )
    v1 |= {"schema_version": SCHEMA_VERSION, "event_id": str(event_id)}
    v1.setdefault("executed_at", now.isoformat())
    try:
        event = _event(v1, ("body",))
    except InvalidBodyError as exc:
        raise InvalidBodyError(problems + exc.problems) from None
    if problems:
        raise InvalidBodyError(problems)
    return event


def _not_a_seed_field(name: str) -> FieldProblem:
    if name in ExecutionEvent.model_fields:
        message = (
            "is a field of a v1 event: a body without schema_version is seed 000's "
            'PatternExecution, which has no such field (add "schema_version": 1 to send a v1 '
            "event)"
        )
    else:
        message = "is not a field of seed 000's PatternExecution body"
    return FieldProblem(loc=["body", name], msg=message, type="extra_forbidden")


def _seed_problem(name: str, message: str, value: object) -> FieldProblem:
    shown = None if value is None else repr(value)[:100]
    return FieldProblem(loc=["body", name], msg=message, type="seed_body", input=shown)


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _header(message: str) -> InvalidBodyError:
    return InvalidBodyError([FieldProblem(loc=_HEADER_LOC, msg=message, type="idempotency_key")])


def _whole(message: str, rule: str) -> InvalidBodyError:
    return InvalidBodyError([FieldProblem(loc=["body"], msg=message, type=rule)])
