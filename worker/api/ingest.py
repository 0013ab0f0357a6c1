"""A POSTed body -> validated events, or every problem with it, each naming its place.

The body is parsed with the events' own strict JSON (numbers are exact Decimals, never floats)
and each event is validated by worker.contract.validate, the worker's own validate stage:
whatever it accepts, the worker stores.
"""

from __future__ import annotations

from typing import Any, Final

from ..contract import json_codec
from ..contract.event import ExecutionEvent
from ..contract.validate import validate
from ..errors import InvalidEventError
from .models import MAX_EVENTS_PER_REQUEST, FieldProblem

MAX_BODY_BYTES: Final = 16 * 1024 * 1024  # 1,000 events of the largest valid size fit


class InvalidBodyError(ValueError):
    """The body is not one valid event or an array of 1 to 1,000 of them."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.loc}: {p.msg}" for p in problems))


def parse_events(body: bytes) -> list[ExecutionEvent]:
    """The events of a body holding one event object or a JSON array of them.

    Raises InvalidBodyError listing every problem: of the body as a whole, or of each event
    (its `loc` is ["body", index, field], or ["body", field] for a single object).
    """
    document = _json(body)
    if isinstance(document, dict):
        return [_event(document, ("body",))]
    if not isinstance(document, list):
        raise _whole("must be an event object or an array of event objects", "body_type")
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


def _whole(message: str, rule: str) -> InvalidBodyError:
    return InvalidBodyError([FieldProblem(loc=["body"], msg=message, type=rule)])
