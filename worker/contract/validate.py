"""Stage 2, validate: a decoded JSON object -> an ExecutionEvent. Pure; no I/O.

Raises InvalidEventError with reason `unsupported_schema_version` (the version is not one this
worker reads) or `schema_violation` (every broken rule, each naming its field).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..errors import FieldError, InvalidEventError, InvalidReason
from . import fast_path, json_codec
from .decode import decode
from .event import SCHEMA_VERSION, ExecutionEvent

_MAX_VALUE_REPR = 80  # characters of an offending value quoted in an error

# Messages for the few rules pydantic itself checks; the model's own validators say theirs.
_MESSAGES = {"missing": "is required"}


def validate(document: Mapping[str, Any], *, now: datetime | None = None) -> ExecutionEvent:
    """Validates one decoded event against contract v1.

    `now` bounds how far in the future `executed_at` may be; it defaults to the current time.
    """
    version = document.get("schema_version")
    if "schema_version" in document and (type(version) is not int or version != SCHEMA_VERSION):
        raise InvalidEventError(
            InvalidReason.UNSUPPORTED_SCHEMA_VERSION,
            (
                FieldError(
                    "schema_version",
                    "unsupported",
                    f"is not supported: this worker reads version {SCHEMA_VERSION}",
                    _short_repr(version),
                ),
            ),
        )
    try:
        return ExecutionEvent.model_validate(document, context={"now": now} if now else None)
    except ValidationError as exc:
        raise InvalidEventError(InvalidReason.SCHEMA_VIOLATION, _field_errors(exc)) from None


def parse_event(value: bytes | None, *, now: datetime | None = None) -> ExecutionEvent:
    """Decodes and validates one message value: the two stages in order. The usual event is
    decoded and validated by the compiled fast path; decode and the model have the last word
    on every other."""
    return parse_with_fingerprint(value, now=now)[0]


def parse_with_fingerprint(
    value: bytes | None, *, now: datetime | None = None
) -> tuple[ExecutionEvent, bytes]:
    """parse_event and the event's fingerprint (ExecutionEvent.fingerprint), which the fast
    path takes on the way for less."""
    accepted = fast_path.accept(value, now)
    if accepted is not None:
        return accepted
    event = validate(decode(value), now=now)
    return event, event.fingerprint()


def parse_event_by_model(value: bytes | None, *, now: datetime | None = None) -> ExecutionEvent:
    """parse_event without the fast path: the reference the fast path must agree with
    (tests/unit/contract/test_fast_path_agrees.py); the worker never calls it."""
    return validate(decode(value), now=now)


def _field_errors(exc: ValidationError) -> tuple[FieldError, ...]:
    errors = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(event)"
        rule = error["type"]
        value = None if rule == "missing" else _short_repr(error.get("input"))
        errors.append(FieldError(field, rule, _MESSAGES.get(rule, error["msg"]), value))
    return tuple(errors)


def _short_repr(value: object) -> str:
    """The value as the producer wrote it (JSON) where possible, shortened."""
    try:
        text = json_codec.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _MAX_VALUE_REPR else text[: _MAX_VALUE_REPR - 3] + "..."
