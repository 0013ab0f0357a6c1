"""Stage 1, decode: message value bytes -> a JSON object. Pure; no I/O.

Raises InvalidEventError with reason `not_utf8`, `invalid_json` or `not_an_object`. What the
object contains is the validate stage's business.
"""

from __future__ import annotations

from typing import Any

from ..errors import FieldError, InvalidEventError, InvalidReason
from . import json_codec

_VALUE = "(message value)"


def decode(value: bytes | None) -> dict[str, Any]:
    """Decodes one Kafka message value into a JSON object with exact Decimal numbers."""
    if not value:
        raise _invalid(InvalidReason.INVALID_JSON, "is empty; an event is a JSON object")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(
            InvalidReason.NOT_UTF8,
            f"is not UTF-8: byte 0x{value[exc.start]:02x} at position {exc.start}",
        ) from None
    try:
        document = json_codec.loads(text)
    except json_codec.JsonError as exc:
        raise _invalid(InvalidReason.INVALID_JSON, f"is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(
            type(document), "a number"
        )
        if document is None:
            kind = "null"
        raise _invalid(InvalidReason.NOT_AN_OBJECT, f"must be a JSON object, not {kind}")
    return document


def _invalid(reason: InvalidReason, message: str) -> InvalidEventError:
    return InvalidEventError(reason, (FieldError(_VALUE, reason.value, message),))
