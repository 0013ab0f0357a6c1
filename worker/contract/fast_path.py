"""A compiled fast path for decode and validate: the usual message value parsed by msgspec
and checked by pydantic-core's own (Rust) validators instead of Python's json with our hooks
and the model's Python validators, with the event's fingerprint taken on the way.

It is a second statement of contract v1 for the common case only, and it never has the last
word on a refusal: whatever it does not accept (a repeated key, an unknown field, a number with
an exponent, an unusual offset, any broken rule) goes to decode and the model
(validate.validate), which accept it or say exactly why not. What it accepts, they accept with
identical values and fingerprint: tests/unit/contract/test_fast_path_agrees.py checks that on
generated inputs.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import msgspec
from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from . import event as contract
from . import json_codec
from .event import ExecutionEvent
from .outcome import OUTCOMES, consistent

# Only what the model surely reads the same way: 'T' and 'Z' or an offset, up to microseconds
# (the model truncates more digits; datetime.fromisoformat would too, but rounding is not its
# business here).
# Hours stop at 23: Python 3.14's fromisoformat reads 24:00:00 as the next midnight, whose
# fingerprint the model writes from the instant, not from the text.
_FAST_RFC3339: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_STORABLE: Final = r"^[^\x00]*$"  # unpaired surrogates fail pydantic-core's str itself


def _number(maximum: Decimal, *, strings: bool) -> cs.CoreSchema:
    """A Decimal as the decode stage makes it, or an int (made a Decimal), or for money a
    plain decimal string within the bounds and places (USD_STRING_RE); bounded. Decimal
    places of a Decimal are the post-check's (_settled)."""
    zero = Decimal(0)
    choices: list[cs.CoreSchema | tuple[cs.CoreSchema, str]] = [
        cs.decimal_schema(strict=True, ge=zero, le=maximum, allow_inf_nan=False),
        cs.chain_schema(
            [cs.int_schema(strict=True, ge=0, le=int(maximum)), cs.decimal_schema(strict=False)]
        ),
    ]
    if strings:  # how producers write money: tried first
        digits = cs.str_schema(
            strict=True,
            pattern=contract.decimal_string_pattern(maximum, contract.MAX_DECIMAL_PLACES),
        )
        choices.insert(0, cs.chain_schema([digits, cs.decimal_schema(strict=False)]))
    return cs.union_schema(choices, mode="left_to_right")


def _text(max_length: int, min_length: int) -> cs.CoreSchema:
    return cs.str_schema(
        strict=True, pattern=_STORABLE, min_length=min_length, max_length=max_length
    )


def _optional(schema: cs.CoreSchema) -> cs.ModelField:
    return cs.model_field(cs.with_default_schema(cs.nullable_schema(schema), default=None))


def _required(schema: cs.CoreSchema) -> cs.ModelField:
    return cs.model_field(schema)


_SECONDS: Final = _number(contract.MAX_SECONDS, strings=False)
_USD: Final = _number(contract.MAX_USD, strings=True)
_IDENTIFIER: Final = _text(contract.MAX_ID_LENGTH, 1)

_FIELDS: Final[dict[str, cs.ModelField]] = {
    "schema_version": _required(cs.int_schema(strict=True, ge=1, le=1)),
    "event_id": _required(
        cs.chain_schema([cs.str_schema(strict=True, pattern=contract.UUID_RE), cs.uuid_schema()])
    ),
    "pattern_id": _required(cs.str_schema(strict=True, pattern=contract.PATTERN_ID_RE)),
    "executed_at": _required(cs.str_schema(strict=True, pattern=_FAST_RFC3339)),
    "success": _required(cs.bool_schema(strict=True)),
    "execution_time_seconds": _required(_SECONDS),
    "estimated_time_seconds": _required(_SECONDS),
    "actual_cost": _required(_USD),
    "estimated_cost": _required(_USD),
    "workflow_id": _optional(_IDENTIFIER),
    "error_message": _optional(_text(contract.MAX_ERROR_MESSAGE_LENGTH, 0)),
    "correlation_id": _optional(_IDENTIFIER),
    "quality_score": _optional(_number(Decimal(1), strings=False)),
    "actual_tokens": _optional(cs.int_schema(strict=True, ge=0, le=contract.MAX_TOKENS)),
    "baseline_tokens": _optional(cs.int_schema(strict=True, ge=0, le=contract.MAX_TOKENS)),
    "source": _optional(_IDENTIFIER),
    "attributes": _optional(cs.no_info_plain_validator_function(contract.check_attributes)),
    "outcome": _optional(cs.literal_schema(list(OUTCOMES))),
}
if list(_FIELDS) != list(ExecutionEvent.model_fields):  # a new field needs a rule here first
    raise RuntimeError("the fast path's fields differ from ExecutionEvent's")

# Builds the ExecutionEvent itself (in Rust, as the model's own validator does); an unknown
# field is refused here, so the model keeps them and their size limit.
_VALIDATOR: Final = SchemaValidator(
    cs.model_schema(
        ExecutionEvent,
        cs.model_fields_schema(_FIELDS, extra_behavior="forbid"),
        extra_behavior="forbid",
        frozen=True,
    )
)

_DECIMAL_FIELDS: Final = (
    "execution_time_seconds",
    "estimated_time_seconds",
    "actual_cost",
    "estimated_cost",
    "quality_score",
)


def accept(value: bytes | None, now: datetime | None) -> tuple[ExecutionEvent, bytes] | None:
    """The event and its fingerprint, if the fast path is sure that decode and the model would
    make exactly this event of the message value; None to leave it to them."""
    document = _document(value) if value else None
    if document is None:
        return None
    try:
        event = _VALIDATOR.validate_python(document)
    except ValidationError:
        return None
    values = event.__dict__
    written = values["executed_at"]
    moment = _moment(written, now)
    if moment is None or not _settled(event):
        return None
    values["executed_at"] = moment
    object.__setattr__(event, "__pydantic_extra__", {})  # as the model has it, no unknown fields
    return event, _fingerprint(values, document["event_id"], written)


# JSON numbers with a fraction or an exponent become Decimals from their text, as json_codec's
# do: msgspec hands float_hook the number as written.
_DECODER: Final = msgspec.json.Decoder(float_hook=Decimal)
_QUOTE_THEN_SPACE: Final = re.compile(rb'"[ \t\r\n]').search  # JSON's whitespace


def _document(value: bytes) -> dict[str, Any] | None:
    """The JSON object json_codec.loads makes of `value` (decoded as UTF-8), or None to leave
    it to decode, which also says what is wrong with it."""
    try:
        document = _DECODER.decode(value)
    except Exception:  # msgspec's errors and float_hook's (an exponent Decimal cannot hold)
        return None
    if type(document) is not dict or _QUOTE_THEN_SPACE(value):
        return None
    # msgspec keeps the last of repeated keys, which json_codec refuses. With no quote followed
    # by whitespace, each key's closing quote is followed by its colon, so `":` occurs once per
    # key at every depth, and more often only inside strings: as many as the keys decoded
    # means that no key was repeated. Only attributes may hold objects in an event the fast
    # path takes (any other field is refused if it does).
    keys = len(document)
    if document.get("attributes"):
        if value.count(b"{") + value.count(b"[") > json_codec.MAX_DEPTH:
            return None  # maybe nested too deeply: json_codec decides
        keys += _nested_keys(document)
    if value.count(b'":') != keys:
        return None
    return document


def _nested_keys(document: dict[str, Any]) -> int:
    """How many keys the objects inside `document` hold, at every depth."""
    count = 0
    stack: list[Any] = list(document.values())
    while stack:
        item = stack.pop()
        if type(item) is dict:
            count += len(item)
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return count


def _settled(event: ExecutionEvent) -> bool:
    """The rules the compiled validator does not state, or not as the model does."""
    values = event.__dict__
    if not event.event_id.int:  # the nil UUID
        return False
    for name in _DECIMAL_FIELDS:
        number = values[name]
        if number is not None:
            # At most MAX_DECIMAL_PLACES characters and no exponent: the model keeps such a
            # number as it is (exponents and very long numbers are left to it).
            text = str(number)
            if len(text) > contract.MAX_DECIMAL_PLACES or "E" in text:
                return False
    outcome = values["outcome"]
    if outcome is None:
        # `"outcome": null` is the model's (rare) case: kept for the fingerprint.
        return "outcome" not in event.__pydantic_fields_set__
    return consistent(outcome, values["success"])


def _moment(text: str, now: datetime | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not UTC:
        moment = contract.in_utc(moment)
    if moment < contract.EARLIEST_EXECUTED_AT:
        return None
    if moment > (now or datetime.now(UTC)) + contract.MAX_CLOCK_SKEW:
        return None
    return moment


_CONTEXT: Final = contract.CANONICAL_CONTEXT
_string: Final = contract.encode_string
_number_of: Final = contract.canonical_number


def _fingerprint(values: dict[str, Any], event_id: str, executed_at: str) -> bytes:
    """ExecutionEvent.fingerprint() of an event the fast path accepted, in fewer steps: the
    same canonical JSON (fields in sorted order), from the text the producer wrote where that
    is the canonical text already. Its numbers have no exponent and are bounded, so
    normalising them (inline: this runs once per event) cannot leave the canonical context's
    exponents, as contract.canonical_number might."""
    v = values
    c = _CONTEXT
    number = v["actual_cost"]
    parts = ['{"actual_cost":"\\u0000', str(number.normalize(c)) if number else "0", '"']
    if (tokens := v["actual_tokens"]) is not None:
        parts += [',"actual_tokens":"\\u0000', _number_of(tokens), '"']
    if (attributes := v["attributes"]) is not None:
        parts += [',"attributes":', contract.canonical_json(attributes)]
    if (tokens := v["baseline_tokens"]) is not None:
        parts += [',"baseline_tokens":"\\u0000', _number_of(tokens), '"']
    if (text := v["correlation_id"]) is not None:
        parts += [',"correlation_id":', _string(text)]
    if (text := v["error_message"]) is not None:
        parts += [',"error_message":', _string(text)]
    estimate, manual, run = (
        v["estimated_cost"],
        v["estimated_time_seconds"],
        v["execution_time_seconds"],
    )
    parts += [
        ',"estimated_cost":"\\u0000',
        str(estimate.normalize(c)) if estimate else "0",
        '","estimated_time_seconds":"\\u0000',
        str(manual.normalize(c)) if manual else "0",
        # str(UUID) is lowercase 8-4-4-4-12, which the fast path's pattern already asks for
        '","event_id":"',
        event_id.lower(),
        '","executed_at":"',
        _utc_text(executed_at, v["executed_at"]),
        '","execution_time_seconds":"\\u0000',
        str(run.normalize(c)) if run else "0",
        '"',
    ]
    if (outcome := v["outcome"]) is not None:
        parts += [',"outcome":"', outcome, '"']  # one of OUTCOMES: nothing to escape
    parts += [',"pattern_id":"', v["pattern_id"], '"']  # ASCII without quote or backslash
    if (score := v["quality_score"]) is not None:
        parts += [',"quality_score":"\\u0000', str(score.normalize(c)) if score else "0", '"']
    parts.append(',"schema_version":"\\u00001"')
    if (text := v["source"]) is not None:
        parts += [',"source":', _string(text)]
    parts.append(',"success":true' if v["success"] else ',"success":false')
    if (text := v["workflow_id"]) is not None:
        parts += [',"workflow_id":', _string(text)]
    parts.append("}")
    return hashlib.sha256("".join(parts).encode()).digest()


def _utc_text(written: str, moment: datetime) -> str:
    """moment.isoformat() (moment in UTC), taken from the text when it says so already."""
    if len(written) == 20 and written[19] == "Z":  # YYYY-MM-DDTHH:MM:SSZ
        return written[:19] + "+00:00"
    return moment.isoformat()
