"""Event contract v1: one execution of an automation pattern, as producers publish it.

The rules live here and only here: the validate stage, the JSON Schema in `schemas/` and the
documentation (docs/event-contract.md) all derive from this model. Numbers that feed money or
sums are `Decimal` end to end, so a value is stored exactly as the producer wrote it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, Overflow, Subnormal, Underflow
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from . import json_codec, range_patterns
from .outcome import ALLOWED, OUTCOMES, ExecutionOutcome, consistent, derived

SCHEMA_VERSION: Final = 1

PATTERN_ID_RE: Final = r"^[A-Za-z0-9._:/-]{1,200}$"
MAX_ID_LENGTH: Final = 200  # characters, for workflow_id, correlation_id and source
MAX_ERROR_MESSAGE_LENGTH: Final = 8192  # characters
MAX_ATTRIBUTES_BYTES: Final = 8192  # compact JSON, UTF-8
MAX_UNKNOWN_FIELDS_BYTES: Final = 16384  # compact JSON, UTF-8, all unknown fields together
MAX_SECONDS: Final = Decimal(366 * 24 * 3600)  # no single run takes or replaces more than a year
MAX_USD: Final = Decimal(1_000_000_000)  # per execution; larger is a unit bug (cents? micros?)
MAX_DECIMAL_PLACES: Final = 40  # admits any float printed by a producer down to ~1e-23
MAX_TOKENS: Final = 2**63 - 1  # PostgreSQL bigint
EARLIEST_EXECUTED_AT: Final = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW: Final = timedelta(days=1)  # executed_at may be this far ahead of our clock

PATTERN_ID: Final = re.compile(PATTERN_ID_RE)
UUID_RE: Final = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID = re.compile(UUID_RE)
_DECIMAL_STRING_RE: Final = r"^[0-9]+(\.[0-9]+)?$"
_DECIMAL_STRING = re.compile(_DECIMAL_STRING_RE)
_RFC3339_RE: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_RFC3339 = re.compile(_RFC3339_RE)
_RFC3339_NAIVE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$"
)
# What the schema states: the date-times _executed_at parses (valid days and times only), in the
# years it can accept: 1999 holds the first instants of 2000 in UTC, and 2999 is far ahead of
# any clock. The rest (not before 2000-01-01 UTC, at most 1 day ahead) is checked at run time.
EXECUTED_AT_SCHEMA_RE: Final = "^" + range_patterns.date_time(1999, 2999) + "$"
# Text with no NUL; an unpaired surrogate, refused too, has no portable pattern.
STORABLE_TEXT_RE: Final = r"^[^\u0000]*$"


def _fail(rule: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(rule, message)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    names = {
        bool: "a boolean",
        int: "an integer",
        Decimal: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- numbers


def _decimal(value: object, *, strings: bool) -> Decimal:
    """Coerces a JSON number (int or Decimal) or, for money, a decimal string; never a float."""
    if isinstance(value, bool):
        raise _fail("number_type", "must be a number, not a boolean")
    if isinstance(value, float):
        raise _fail(
            "float_not_allowed", "must be an int, a Decimal or a decimal string, not a float"
        )
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and strings:
        if not _DECIMAL_STRING.fullmatch(value):
            raise _fail("decimal_string", 'must be a plain decimal string such as "12.50"')
        return Decimal(value)
    if not isinstance(value, Decimal):
        expected = "a number or a decimal string" if strings else "a number"
        raise _fail("number_type", f"must be {expected}, not {_type_name(value)}")
    if not value.is_finite():
        raise _fail("finite_number", "must be a finite number")
    return value


def _bounded_decimal(value: object, *, strings: bool, maximum: Decimal, unit: str) -> Decimal:
    # A finite Decimal is what the decode stage makes of nearly every number: skip the checks.
    number = (
        value if type(value) is Decimal and value.is_finite() else _decimal(value, strings=strings)
    )
    if number < 0:
        raise _fail("ge", "must be >= 0")
    if number > maximum:
        raise _fail("le", f"must be <= {maximum}{unit}")
    # A plain (no exponent) string of at most MAX_DECIMAL_PLACES characters cannot hold more
    # decimal places: that test is a fraction of the cost of as_tuple(), run on every amount.
    text = str(number)
    if len(text) <= MAX_DECIMAL_PLACES and "E" not in text:
        return number
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        raise _fail("decimal_places", f"must have at most {MAX_DECIMAL_PLACES} decimal places")
    if not number and isinstance(exponent, int) and exponent > 0:
        # 0e999999999999999999 is 0, and numeric would refuse its exponent (beyond 2**30).
        return _ZERO
    return number


_ZERO: Final = Decimal(0)


def _seconds(value: object) -> Decimal:
    return _bounded_decimal(value, strings=False, maximum=MAX_SECONDS, unit=" seconds")


def _usd(value: object) -> Decimal:
    return _bounded_decimal(value, strings=True, maximum=MAX_USD, unit=" USD")


def _quality_score(value: object) -> Decimal:
    return _bounded_decimal(value, strings=False, maximum=Decimal(1), unit="")


def _tokens(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _fail("integer_type", f"must be an integer, not {_type_name(value)}")
    if isinstance(value, Decimal) and (not value.is_finite() or value != value.to_integral_value()):
        raise _fail("integer_type", "must be an integer")
    # Range first: int() of a Decimal like 1E+999999999 would build a billion-digit integer.
    if value < 0:
        raise _fail("ge", "must be >= 0")
    if value > MAX_TOKENS:
        raise _fail("le", f"must be <= {MAX_TOKENS}")
    return int(value)


def decimal_string_pattern(maximum: Decimal, places: int) -> str:
    """The decimal strings from 0 to `maximum` (a power of ten) with at most `places` decimal
    places, leading zeros allowed: what _usd takes of a string."""
    digits = len(str(int(maximum))) - 1
    if maximum != Decimal(10) ** digits or digits < 1:
        raise ValueError(f"{maximum} is not a power of ten above 1")
    below = f"[0-9]{{1,{digits}}}(\\.[0-9]{{1,{places}}})?"
    return f"^0*({below}|{int(maximum)}(\\.0{{1,{places}}})?)$"


USD_STRING_RE: Final = decimal_string_pattern(MAX_USD, MAX_DECIMAL_PLACES)
_SECONDS_SCHEMA = {"type": "number", "minimum": 0, "maximum": int(MAX_SECONDS)}
_USD_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": int(MAX_USD)},
        {"type": "string", "pattern": USD_STRING_RE},
    ],
}

Seconds = Annotated[Decimal, PlainValidator(_seconds), WithJsonSchema(_SECONDS_SCHEMA)]
Usd = Annotated[Decimal, PlainValidator(_usd), WithJsonSchema(_USD_SCHEMA)]
QualityScore = Annotated[
    Decimal,
    PlainValidator(_quality_score),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1}),
]
Tokens = Annotated[
    int,
    PlainValidator(_tokens),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_TOKENS}),
]


# --------------------------------------------------------------------------- identifiers and text


def _event_id(value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        parsed = value
    elif isinstance(value, str):
        if not _UUID.fullmatch(value):
            raise _fail("uuid", "must be a UUID like 8-4-4-4-12 hexadecimal digits")
        parsed = uuid.UUID(value)
    else:
        raise _fail("uuid", f"must be a UUID string, not {_type_name(value)}")
    if parsed.int == 0:
        raise _fail("uuid", "must not be the nil UUID (producers generate a new one per event)")
    return parsed


EventId = Annotated[
    uuid.UUID,
    PlainValidator(_event_id),
    WithJsonSchema(
        {
            "type": "string",
            "format": "uuid",
            "pattern": _UUID.pattern,
            "not": {"const": "00000000-0000-0000-0000-000000000000"},
        }
    ),
]


def _pattern_id(value: object) -> str:
    if not isinstance(value, str):
        raise _fail("string_type", f"must be a string, not {_type_name(value)}")
    if not PATTERN_ID.fullmatch(value):
        raise _fail("pattern_id", "must be 1-200 characters of A-Z a-z 0-9 . _ : / -")
    return value


PatternId = Annotated[
    str,
    PlainValidator(_pattern_id),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200, "pattern": PATTERN_ID_RE}),
]


def _text(max_length: int, *, allow_empty: bool) -> Callable[[object], str]:
    def validate(value: object) -> str:
        if not isinstance(value, str):
            raise _fail("string_type", f"must be a string, not {_type_name(value)}")
        problem = json_codec.unstorable(value)
        if problem:
            raise _fail("invalid_character", f"must not contain {problem}")
        if not value and not allow_empty:
            raise _fail("string_too_short", "must not be empty")
        if len(value) > max_length:
            raise _fail("string_too_long", f"must be at most {max_length} characters")
        return value

    return validate


Identifier = Annotated[
    str,
    PlainValidator(_text(MAX_ID_LENGTH, allow_empty=False)),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_LENGTH,
            "pattern": STORABLE_TEXT_RE,
        }
    ),
]
ErrorMessage = Annotated[
    str,
    PlainValidator(_text(MAX_ERROR_MESSAGE_LENGTH, allow_empty=True)),
    WithJsonSchema(
        {"type": "string", "maxLength": MAX_ERROR_MESSAGE_LENGTH, "pattern": STORABLE_TEXT_RE}
    ),
]


def _success(value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail("bool_type", f"must be true or false, not {_type_name(value)}")
    return value


Success = Annotated[bool, PlainValidator(_success), WithJsonSchema({"type": "boolean"})]


def _outcome(value: object, info: ValidationInfo) -> ExecutionOutcome:
    if not isinstance(value, str):
        raise _fail("outcome", f"must be a string, not {_type_name(value)}")
    if value not in OUTCOMES:
        raise _fail("outcome", f"must be one of {', '.join(OUTCOMES)}")
    success = info.data.get("success")  # absent when `success` itself is invalid
    if isinstance(success, bool) and not consistent(value, success):
        flag = "true" if success else "false"
        *others, last = ALLOWED[success]
        raise _fail(
            "outcome_contradicts_success",
            f"contradicts success={flag}: with success={flag}, outcome must be "
            f"{', '.join(others)} or {last}",
        )
    return value  # narrowed to ExecutionOutcome by the `in OUTCOMES` check


Outcome = Annotated[
    ExecutionOutcome,
    PlainValidator(_outcome),
    WithJsonSchema({"type": "string", "enum": list(OUTCOMES)}),
]


def _schema_version(value: object) -> int:
    if type(value) is not int or value != SCHEMA_VERSION:
        raise _fail("schema_version", f"must be {SCHEMA_VERSION}")
    return SCHEMA_VERSION


SchemaVersion = Annotated[
    int, PlainValidator(_schema_version), WithJsonSchema({"const": SCHEMA_VERSION})
]


def check_attributes(value: object) -> dict[str, Any]:
    """The attributes rule (the model's and the fast path's): an object of JSON values, small."""
    if not isinstance(value, dict):
        raise _fail("object_type", f"must be an object, not {_type_name(value)}")
    try:
        size = len(json_codec.dumps(value).encode())
    except (TypeError, ValueError) as exc:
        raise _fail("json_value", f"must hold only JSON values ({exc})") from None
    if size > MAX_ATTRIBUTES_BYTES:
        raise _fail("object_too_large", f"must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON")
    return value


Attributes = Annotated[
    dict[str, Any],
    PlainValidator(check_attributes),
    WithJsonSchema(
        {
            "type": "object",
            "description": f"Free-form; at most {MAX_ATTRIBUTES_BYTES} bytes as compact JSON.",
        }
    ),
]


# --------------------------------------------------------------------------- time


def _executed_at(value: object, info: ValidationInfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _fail("timezone_naive", "must include a UTC offset such as Z or +02:00")
        moment = value
    elif isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            if _RFC3339_NAIVE.fullmatch(value):
                raise _fail("timezone_naive", "must include a UTC offset such as Z or +02:00")
            raise _fail("rfc3339", "must be an RFC 3339 date-time such as 2026-05-01T12:30:00Z")
        moment = _parse_rfc3339(value)
    else:
        raise _fail("rfc3339", f"must be an RFC 3339 date-time string, not {_type_name(value)}")
    if moment.tzinfo is not UTC:  # "Z" parses to UTC itself
        # PostgreSQL's timestamptz refuses offsets beyond 15:59 that RFC 3339 allows, and the
        # instant is all the contract keeps; the fingerprint was always taken in UTC.
        moment = in_utc(moment)
    now = _now(info)
    if moment < EARLIEST_EXECUTED_AT:
        raise _fail("too_early", f"must not be before {EARLIEST_EXECUTED_AT:%Y-%m-%d}")
    if moment > now + MAX_CLOCK_SKEW:
        raise _fail("in_future", "must not be more than 1 day in the future")
    return moment


def in_utc(moment: datetime) -> datetime:
    """`moment` in UTC. An instant datetime cannot hold in UTC (0001-01-01T00:00:00+01:00,
    9999-12-31T23:59:59-01:00) becomes the earliest or latest one it can, which the bounds of
    executed_at refuse as too early or in the future: astimezone's OverflowError is no
    ValueError, so pydantic would let it through and stop the worker on that message."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def _parse_rfc3339(text: str) -> datetime:
    normalized = text[:10] + "T" + text[11:]
    if normalized[-1] in "Zz":
        normalized = normalized[:-1] + "+00:00"
    # Nanosecond producers (Go, Java) send 9 digits; PostgreSQL keeps microseconds.
    if "." in normalized:
        head, rest = normalized.split(".", 1)
        digits = len(rest) - 6  # the offset is always 6 characters: +hh:mm
        normalized = f"{head}.{rest[: min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    try:
        return datetime.fromisoformat(normalized)
    except ValueError:
        raise _fail(
            "rfc3339", "is not a valid date-time (check the day, hour and offset)"
        ) from None


def _now(info: ValidationInfo) -> datetime:
    context = info.context if isinstance(info.context, dict) else {}
    now = context.get("now")
    return now if isinstance(now, datetime) else datetime.now(UTC)


ExecutedAt = Annotated[
    datetime,
    PlainValidator(_executed_at),
    # No "format": "date-time": that format has no space between date and time, which is
    # accepted; the pattern states the rest of RFC 3339.
    WithJsonSchema({"type": "string", "pattern": EXECUTED_AT_SCHEMA_RE}),
]


# --------------------------------------------------------------------------- the model


class ExecutionEvent(BaseModel):
    """One run of an automation pattern (event contract v1).

    Published as a UTF-8 JSON object, message key = pattern_id. Unknown fields are kept.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        title="ExecutionEvent",
        json_schema_extra={
            "description": "One run of an automation pattern (event contract v1), published "
            "as a UTF-8 JSON object with message key = pattern_id. Unknown fields are kept. "
            "Checked when the event is read, beyond what this schema can state: executed_at is "
            "not before 2000-01-01T00:00:00Z nor more than 1 day ahead of the reader's clock; "
            f"a number has at most {MAX_DECIMAL_PLACES} decimal places as written, its exponent "
            f"included (1e-{MAX_DECIMAL_PLACES + 1} and 2.5e-{MAX_DECIMAL_PLACES} are "
            "refused), and an exponent within about 10**18; attributes take at most "
            f"{MAX_ATTRIBUTES_BYTES} bytes and the unknown fields together at most "
            f"{MAX_UNKNOWN_FIELDS_BYTES} bytes as compact UTF-8 JSON; no string or key holds "
            "an unpaired UTF-16 surrogate; no object repeats a key; JSON nests at most "
            f"{json_codec.MAX_DEPTH} levels.",
        },
    )

    schema_version: SchemaVersion = Field(description="Contract version; this schema is 1.")
    event_id: EventId = Field(description="Made by the producer; the idempotency key.")
    pattern_id: PatternId = Field(description="The automation pattern that ran.")
    executed_at: ExecutedAt = Field(
        description="When it ran: RFC 3339 with an offset, from 2000-01-01 to 1 day ahead of now."
    )
    success: Success = Field(description="Whether the run achieved its goal.")
    execution_time_seconds: Seconds = Field(description="How long the automated run took.")
    estimated_time_seconds: Seconds = Field(description="How long the manual work would take.")
    actual_cost: Usd = Field(description="USD the run cost. Decimal number or decimal string.")
    estimated_cost: Usd = Field(description="USD the manual work would cost. Number or string.")

    workflow_id: Identifier | None = Field(default=None, description="The workflow run.")
    error_message: ErrorMessage | None = Field(default=None, description="Why a run failed.")
    correlation_id: Identifier | None = Field(default=None, description="Ties related events.")
    quality_score: QualityScore | None = Field(default=None, description="0 to 1.")
    actual_tokens: Tokens | None = Field(default=None, description="LLM tokens the run used.")
    baseline_tokens: Tokens | None = Field(default=None, description="Tokens without automation.")
    source: Identifier | None = Field(default=None, description="Who published the event.")
    attributes: Attributes | None = Field(default=None, description="Small free-form object.")
    # Last: validated after `success`, which it must agree with (docs/event-contract.md).
    outcome: Outcome | None = Field(
        default=None,
        description="How the run ended: success, failure (ran, did not achieve its goal), "
        "partial_success, or error (could not run). success=true allows success or "
        "partial_success; success=false allows failure, error or partial_success. Absent: "
        "success if success is true, else failure.",
    )

    @model_validator(mode="after")
    def _unknown_fields_are_small(self) -> ExecutionEvent:
        if self.__pydantic_extra__:
            try:
                size = len(json_codec.dumps(self.__pydantic_extra__).encode())
            except (TypeError, ValueError):
                raise _unknown_field_error(self.__pydantic_extra__) from None
            if size > MAX_UNKNOWN_FIELDS_BYTES:
                raise _fail(
                    "unknown_fields_too_large",
                    f"unknown fields must total at most {MAX_UNKNOWN_FIELDS_BYTES} bytes as JSON",
                )
        return self

    @property
    def resolved_outcome(self) -> ExecutionOutcome:
        """`outcome` as given or, absent, derived from `success`: what is stored and counted."""
        return self.outcome or derived(self.success)

    @property
    def unknown_fields(self) -> dict[str, Any]:
        """Fields this version does not define, kept as received."""
        return dict(self.__pydantic_extra__ or {})

    def to_document(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (Decimals stay Decimals; see json_codec.dumps)."""
        document: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None and not (name == "outcome" and self._outcome_sent_as_null):
                continue
            if isinstance(value, uuid.UUID):
                value = str(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            document[name] = value
        document.update(self.unknown_fields)
        return document

    def fingerprint(self) -> bytes:
        """SHA-256 of the event's content, the same however a producer wrote equal values.

        Canonical form: compact JSON with keys sorted, executed_at in UTC, and every number
        normalized (1.50 and "1.5" are equal amounts) and written as a string prefixed by NUL.
        Tells a re-delivered event from a conflicting re-use of its event_id. The stored
        content_sha256 of every event depends on this exact form: changing it needs a
        migration that recomputes them.
        """
        values = self.__dict__
        extra = self.__pydantic_extra__
        null_outcome = self._outcome_sent_as_null
        if extra or null_outcome:
            # Rare: unknown fields sort in among the known ones. So does `"outcome": null`,
            # kept as an unknown field (so fingerprinted as null) before outcome was defined.
            members = [
                (name, encode_string(name) + ":" + encode(value))
                for name, encode in _FINGERPRINT_FIELDS
                if (value := values[name]) is not None
            ]
            members += [
                (name, encode_string(name) + ":" + canonical_json(value))
                for name, value in (extra or {}).items()
            ]
            if null_outcome:
                members.append(("outcome", encode_string("outcome") + ":null"))
            members.sort()
            parts = [member for _, member in members]
        else:
            parts = [
                prefix + encode(value)
                for (name, encode), prefix in zip(_FINGERPRINT_FIELDS, _PREFIXES, strict=True)
                if (value := values[name]) is not None
            ]
        canonical = "{" + ",".join(parts) + "}"
        return hashlib.sha256(canonical.encode()).digest()

    @property
    def _outcome_sent_as_null(self) -> bool:
        """Whether the event says `"outcome": null`. Other fields sent as null are as good as
        absent; `outcome` was an unknown field before contract v1 defined it, and an event
        stored then keeps its fingerprint and its document only if its null is kept too."""
        return self.outcome is None and "outcome" in self.__pydantic_fields_set__

    def to_json(self) -> bytes:
        """The event as the UTF-8 JSON a producer publishes: exact numbers, no floats."""
        return json_codec.dumps(self.to_document()).encode()


# Free-form JSON as json_codec.dumps takes it: no NUL in a string or key, at any depth (sizes
# and nesting are checked at run time). Recursive, so added after pydantic, which refuses a
# "$ref" it did not write.
_STORABLE_OBJECT: Final = {
    "propertyNames": {"pattern": STORABLE_TEXT_RE},
    "additionalProperties": {"$ref": "#/$defs/JsonValue"},
}
_JSON_VALUE: Final = {
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", "pattern": STORABLE_TEXT_RE},
        {"type": "array", "items": {"$ref": "#/$defs/JsonValue"}},
        {"type": "object", **_STORABLE_OBJECT},
    ]
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the model (draft 2020-12, without `$schema` and `$id`), with its
    free-form values (attributes, unknown fields) held to storable JSON."""
    schema = ExecutionEvent.model_json_schema(mode="validation")
    schema.update(_STORABLE_OBJECT)
    schema["$defs"] = {**schema.get("$defs", {}), "JsonValue": _JSON_VALUE}
    for branch in schema["properties"]["attributes"]["anyOf"]:
        if branch.get("type") == "object":
            branch.update(_STORABLE_OBJECT)
    schema["allOf"] = [
        {
            "if": {"properties": {"success": {"const": success}}, "required": ["success"]},
            "then": {"properties": {"outcome": {"enum": [*allowed, None]}}},
        }
        for success, allowed in ALLOWED.items()
    ]
    return schema


_MAX_NAME_QUOTED: Final = 60


def _unknown_field_error(fields: dict[str, Any]) -> PydanticCustomError:
    """The error naming the first unknown field that is not storable JSON."""
    for name, value in fields.items():
        try:
            json_codec.dumps({name: value})
        except (TypeError, ValueError) as exc:
            # ASCII and short: the name is the producer's, and may hold anything.
            quoted = json.dumps(name)
            if len(quoted) > _MAX_NAME_QUOTED:
                quoted = quoted[: _MAX_NAME_QUOTED - 4] + '..."'
            return _fail("json_value", f"unknown field {quoted} must hold only JSON values ({exc})")
    return _fail("json_value", "unknown fields must hold only JSON values")


# The fingerprint's canonical JSON is written by hand for the model's own fields (the hot path:
# one per consumed event) and by the json module for free-form values; both give exactly what
# json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False) gives.
encode_string: Final[Callable[[str], str]] = json.encoder.encode_basestring

# Numbers become strings with this prefix, so that the C JSON encoder can write them exactly;
# no string of a valid event contains NUL, so none can pass for a number.
_NUMBER: Final = "\x00"


# Python's default context, in which every stored fingerprint was computed: pinned, so that no
# thread's decimal settings can change one. An exponent beyond its range traps, to
# _exact_number: normalising 1e9999999 used to raise Overflow from here, stopping the worker.
CANONICAL_CONTEXT: Final = Context(
    prec=28,
    rounding=ROUND_HALF_EVEN,
    Emin=-999999,
    Emax=999999,
    capitals=1,
    clamp=0,
    traps=[Overflow, Underflow, Subnormal],
)


def canonical_number(value: int | Decimal) -> str:
    """A number by value: 100, 100.0 and 1E+2 alike."""
    number = value if type(value) is Decimal else Decimal(value)
    if not number:
        return "0"
    try:
        return str(number.normalize(CANONICAL_CONTEXT))
    except (Overflow, Underflow, Subnormal):
        return _exact_number(number)


def _exact_number(number: Decimal) -> str:
    """Every digit, without trailing zeros, for numbers beyond the canonical context's
    exponents. No stored fingerprint holds one (normalising raised, or PostgreSQL refused the
    row), so this form is free to choose; it is exact, so it cannot equal another number's."""
    sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int):  # NaN and Infinity: the contract refuses them anyway
        return str(number)
    end = len(digits)
    while digits[end - 1] == 0:  # a zero returned early: some digit is not 0
        end -= 1
    exponent += len(digits) - end
    return "-" * sign + "".join(map(str, digits[:end])) + f"E{exponent:+d}"


def _encode_number(value: int | Decimal) -> str:
    return '"\\u0000' + canonical_number(value) + '"'


def _encode_bool(value: bool) -> str:
    return "true" if value else "false"


def _encode_uuid(value: uuid.UUID) -> str:
    return '"' + str(value) + '"'


def _encode_moment(value: datetime) -> str:
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)  # "Z" parses to UTC itself
    return '"' + utc.isoformat() + '"'  # digits, '-', ':', '.', 'T', '+'


def canonical_json(value: Any) -> str:
    """A free-form value as the fingerprint writes it: keys sorted, numbers by value."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return _NUMBER + canonical_number(value)
    return value


_ENCODERS: Final[dict[str, Callable[[Any], str]]] = {
    "schema_version": _encode_number,
    "event_id": _encode_uuid,
    "pattern_id": encode_string,
    "executed_at": _encode_moment,
    "success": _encode_bool,
    "execution_time_seconds": _encode_number,
    "estimated_time_seconds": _encode_number,
    "actual_cost": _encode_number,
    "estimated_cost": _encode_number,
    "workflow_id": encode_string,
    "error_message": encode_string,
    "correlation_id": encode_string,
    "quality_score": _encode_number,
    "actual_tokens": _encode_number,
    "baseline_tokens": _encode_number,
    "source": encode_string,
    "attributes": canonical_json,
    "outcome": encode_string,
}
# Every field of the model, in the canonical (sorted) order; a new field without an encoder
# fails here, at import.
_FINGERPRINT_FIELDS: Final = tuple(
    (name, _ENCODERS[name]) for name in sorted(ExecutionEvent.model_fields)
)
_PREFIXES: Final = tuple(encode_string(name) + ":" for name, _ in _FINGERPRINT_FIELDS)
