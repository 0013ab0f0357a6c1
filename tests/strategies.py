"""Hypothesis strategies for event contract v1: valid wire documents and JSON values."""

from __future__ import annotations

import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import MAX_EMAX, MIN_ETINY, Decimal
from typing import Any

from hypothesis import strategies as st

from worker.contract import json_codec
from worker.contract.event import (
    EARLIEST_EXECUTED_AT,
    MAX_ATTRIBUTES_BYTES,
    MAX_CLOCK_SKEW,
    MAX_DECIMAL_PLACES,
    MAX_ERROR_MESSAGE_LENGTH,
    MAX_ID_LENGTH,
    MAX_SECONDS,
    MAX_TOKENS,
    MAX_UNKNOWN_FIELDS_BYTES,
    MAX_USD,
    PATTERN_ID_RE,
    ExecutionEvent,
)
from worker.contract.outcome import ALLOWED

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KNOWN_FIELDS = frozenset(ExecutionEvent.model_fields)
REQUIRED_FIELDS = tuple(
    name for name, field in ExecutionEvent.model_fields.items() if field.is_required()
)

# Text PostgreSQL can store: no NUL, no unpaired surrogates (those are rejected, see the tests).
storable = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**6), max_value=10**6
    )
    | st.text(storable, max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(storable, max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _decimals(maximum: Decimal, max_places: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, max_places).flatmap(
        lambda places: st.decimals(min_value=0, max_value=maximum, places=places)
    )


money = _decimals(MAX_USD, 18)
seconds = _decimals(MAX_SECONDS, 9)
# Every offset RFC 3339 can write, -23:59 to +23:59; PostgreSQL's timestamptz input takes only
# up to 15:59, so the worker stores executed_at in UTC.
MAX_OFFSET_MINUTES = 23 * 60 + 59
offsets = st.integers(-MAX_OFFSET_MINUTES, MAX_OFFSET_MINUTES).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2026, 5, 30), timezones=offsets
)
uuids = st.uuids().filter(lambda value: value.int != 0)
identifiers = st.text(string.ascii_letters + string.digits + "-_ ", min_size=1, max_size=200)


@st.composite
def wire_money(draw: st.DrawFn) -> tuple[Any, Decimal]:
    """A money value as a producer may send it (number or decimal string), and its exact value."""
    value = draw(money)
    return (format(value, "f") if draw(st.booleans()) else value), value


def outcomes(success: bool) -> st.SearchStrategy[dict[str, Any]]:
    """No `outcome`, a null one, or one that agrees with `success`, as a field to add."""
    return st.sampled_from([{}, {"outcome": None}, *({"outcome": o} for o in ALLOWED[success])])


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event as the JSON object a producer publishes (numbers as exact Decimals)."""
    moment = draw(moments)
    document: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(draw(uuids)),
        "pattern_id": draw(st.from_regex(PATTERN_ID_RE, fullmatch=True)),
        "executed_at": draw(
            st.sampled_from(
                [
                    moment.isoformat(),
                    moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z"),
                ]
            )
        ),
        "success": draw(st.booleans()),
        "execution_time_seconds": draw(seconds),
        "estimated_time_seconds": draw(seconds),
        "actual_cost": draw(wire_money())[0],
        "estimated_cost": draw(wire_money())[0],
    }
    optional = {
        "workflow_id": identifiers,
        "error_message": st.text(storable, max_size=300),
        "correlation_id": identifiers,
        "quality_score": st.decimals(min_value=0, max_value=1, places=3),
        "actual_tokens": st.integers(0, 2**63 - 1),
        "baseline_tokens": st.integers(0, 2**63 - 1),
        "source": identifiers,
        "attributes": st.dictionaries(st.text(storable, max_size=10), json_values, max_size=4),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            document[name] = draw(strategy)
    document.update(draw(outcomes(document["success"])))
    unknown = draw(
        st.dictionaries(
            st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
                lambda key: key not in KNOWN_FIELDS
            ),
            json_values,
            max_size=2,
        )
    )
    document.update(unknown)
    return document


# ------------------------------------------------------------------ the whole accepted space
#
# valid_documents draws ordinary events; accepted_events draws from everything the contract
# accepts: every RFC 3339 spelling and offset, the bounds of every field, and free-form values
# (attributes, unknown fields) with numbers as far as Decimal reads them and strings as odd as
# storable text gets.

# Exponents where something changes: what jsonb keeps as a number (worker.contract.json_codec), what
# PostgreSQL's numeric holds (16,383 digits after the point, 131,072 before), what Python's
# default decimal context normalises without trapping, and how far Decimal reads at all.
_EXPONENT_EDGES = (
    0,
    1,
    -1,
    json_codec.JSONB_MAX_EXPONENT,
    json_codec.JSONB_MAX_EXPONENT + 1,
    -json_codec.JSONB_MAX_EXPONENT,
    -json_codec.JSONB_MAX_EXPONENT - 1,
    16383,
    -16383,
    -16384,
    131071,
    131072,
    99999,
    -99999,
    999999,
    1000000,
    -999999,
    -1000000,
    -1000026,
    MAX_EMAX,
    -MAX_EMAX,
    MIN_ETINY,
)


@st.composite
def extreme_decimals(draw: st.DrawFn) -> Decimal:
    """A finite Decimal whose JSON text json_codec.loads reads back: any digits, any exponent
    from MIN_ETINY to where the leading digit reaches MAX_EMAX."""
    digits = tuple(draw(st.lists(st.integers(0, 9), min_size=1, max_size=60)))
    exponent = draw(st.sampled_from(_EXPONENT_EDGES) | st.integers(-2000, 2000))
    exponent = max(MIN_ETINY, min(exponent, MAX_EMAX - (len(digits) - 1)))
    return Decimal((draw(st.integers(0, 1)), digits, exponent))


extreme_numbers: st.SearchStrategy[int | Decimal] = st.one_of(
    st.integers(-(10**100), 10**100),
    st.integers(1, 1500).map(lambda length: int("9" * length)),  # many digits, not too many bytes
    st.integers(1, 1500).map(lambda length: -int("1" + "0" * length)),
    extreme_decimals(),
    st.sampled_from(
        [
            0,
            Decimal("-0"),
            Decimal("-0.0"),
            Decimal("0E+999999999999999999"),
            Decimal("0E-999999999999999999"),
            Decimal("1E-99999"),
            Decimal("1E+99999"),
            Decimal("-1E+131071"),
            Decimal("1E-16383"),
            Decimal("1E-16384"),
            Decimal("4.9406564584124654E-324"),  # the smallest double
            Decimal("1.7976931348623157E+308"),  # the largest double
            Decimal("0." + "1234567890" * 50),  # 500 decimals
        ]
    ),
)

# Storable text at its oddest: escapes JSON must write, separators JavaScript chokes on, the
# byte order mark, noncharacters, the last code point, combining marks and emoji.
_ODD_STRINGS = (
    "",
    " ",
    '"\\/',
    "\x01\x1f\x7f\x80\x9f",
    "\u2028\u2029",
    "\ufeff",
    "\ufffe\uffff",
    "\U0010ffff",
    "e\u0301\U0001f469\u200d\U0001f4bb",
    "\\u0000",  # the six characters, not NUL
    "null",
    "1e-99999",
)
odd_strings = st.sampled_from(_ODD_STRINGS) | st.text(storable, max_size=40)

extreme_scalars = st.none() | st.booleans() | extreme_numbers | odd_strings


@st.composite
def deep_values(draw: st.DrawFn) -> Any:
    """A scalar inside up to 62 arrays and objects: with the event and the field holding it,
    the 64 levels json_codec.loads allows."""
    value: Any = draw(extreme_scalars)
    for in_array in draw(st.lists(st.booleans(), max_size=62)):
        value = [value] if in_array else {draw(odd_strings): value}
    return value


extreme_json_values = (
    st.recursive(
        extreme_scalars,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(odd_strings, children, max_size=3)
        ),
        max_leaves=8,
    )
    | deep_values()
)


def _fit(fields: dict[str, Any], limit: int, pad: str | None) -> dict[str, Any]:
    """`fields` cut to at most `limit` bytes of compact JSON, then padded to exactly `limit`
    with a string field named `pad` (when given and there is room for it)."""
    fields = dict(fields)
    while fields and len(json_codec.dumps(fields).encode()) > limit:
        fields.popitem()
    if pad is not None and pad not in fields:
        room = limit - len(json_codec.dumps({**fields, pad: ""}).encode())
        if room >= 0:
            fields[pad] = "x" * room
    return fields


@dataclass(frozen=True)
class Accepted:
    """An event the contract accepts, as a producer publishes it, and what it means."""

    document: dict[str, Any]
    instant: datetime  # executed_at, to the microsecond PostgreSQL keeps
    money: dict[str, Decimal]  # the exact value of every amount and duration


@st.composite
def rfc3339_moments(draw: st.DrawFn) -> tuple[str, datetime]:
    """An executed_at the contract accepts, in any RFC 3339 spelling, and its instant."""
    latest = NOW + MAX_CLOCK_SKEW
    instant = draw(
        st.sampled_from([EARLIEST_EXECUTED_AT, latest])
        | st.datetimes(
            min_value=EARLIEST_EXECUTED_AT.replace(tzinfo=None),
            max_value=latest.replace(tzinfo=None),
            timezones=st.just(UTC),
        )
    )
    minutes = draw(
        st.sampled_from([0, MAX_OFFSET_MINUTES, -MAX_OFFSET_MINUTES, 16 * 60, -16 * 60, 959])
        | st.integers(-MAX_OFFSET_MINUTES, MAX_OFFSET_MINUTES)
    )
    local = instant.astimezone(timezone(timedelta(minutes=minutes)))
    places = draw(st.integers(0, 9))  # Go and Java write nanoseconds
    fraction = f"{local.microsecond:06d}" + draw(st.text("0123456789", min_size=3, max_size=3))
    kept = fraction[: min(places, 6)].ljust(6, "0")  # what the contract keeps: truncated
    if minutes:
        offset = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    else:
        offset = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"]))
    text = (
        f"{local:%Y-%m-%d}{draw(st.sampled_from('Tt '))}{local:%H:%M:%S}"
        f"{'.' + fraction[:places] if places else ''}{offset}"
    )
    return text, instant.replace(microsecond=int(kept))


def _bounded(maximum: Decimal) -> st.SearchStrategy[Decimal]:
    """Amounts at their bounds and in between, with up to MAX_DECIMAL_PLACES decimals."""
    tiny = Decimal(1).scaleb(-MAX_DECIMAL_PLACES)
    return st.sampled_from(
        [Decimal(0), Decimal("0.000"), tiny, maximum, maximum - tiny]
    ) | st.integers(0, MAX_DECIMAL_PLACES).flatmap(
        lambda places: st.decimals(min_value=0, max_value=maximum, places=places)
    )


@st.composite
def wire_amount(draw: st.DrawFn, maximum: Decimal, *, strings: bool) -> tuple[Any, Decimal]:
    """An amount as a producer may write it, and its exact value."""
    value = draw(_bounded(maximum))
    spelling = draw(st.sampled_from(["number", "exponent", "string", "zero"]))
    if spelling == "string" and strings:
        return format(value, "f"), value
    if spelling == "exponent":  # 1.5E+3 for 1500: the same digits, trailing zeros dropped
        sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        kept = len(digits)
        while kept > 1 and digits[kept - 1] == 0:
            kept -= 1
        return Decimal((sign, digits[:kept], exponent + len(digits) - kept)), value
    if spelling == "zero":  # 0e999999999999999999: the contract's zero with its widest exponent
        return Decimal("0E+999999999999999999"), Decimal(0)
    return value, value


@st.composite
def accepted_events(draw: st.DrawFn) -> Accepted:
    """Any event the contract accepts, extreme values and free-form fields included."""
    executed_at, instant = draw(rfc3339_moments())
    document: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(draw(uuids)),
        "pattern_id": draw(st.from_regex(PATTERN_ID_RE, fullmatch=True)),
        "executed_at": executed_at,
        "success": draw(st.booleans()),
    }
    money: dict[str, Decimal] = {}
    for name, maximum, strings in (
        ("execution_time_seconds", MAX_SECONDS, False),
        ("estimated_time_seconds", MAX_SECONDS, False),
        ("actual_cost", MAX_USD, True),
        ("estimated_cost", MAX_USD, True),
    ):
        document[name], money[name] = draw(wire_amount(maximum, strings=strings))
    long_text = st.text(storable, min_size=1, max_size=MAX_ID_LENGTH) | st.sampled_from(
        [c * MAX_ID_LENGTH for c in ("x", "\U0010ffff", "\u2028")]
    )
    optional: dict[str, st.SearchStrategy[Any]] = {
        "workflow_id": long_text,
        "error_message": st.text(storable, max_size=200)
        | st.just("\U0001f4a5" * MAX_ERROR_MESSAGE_LENGTH),
        "correlation_id": long_text,
        "quality_score": wire_amount(Decimal(1), strings=False).map(lambda pair: pair[0]),
        "actual_tokens": st.sampled_from([0, MAX_TOKENS, Decimal("9.223372036854775807E+18")])
        | st.integers(0, MAX_TOKENS),
        "baseline_tokens": st.sampled_from([Decimal("5.000"), Decimal("0E+99")])
        | st.integers(0, MAX_TOKENS),
        "source": long_text,
        "attributes": st.dictionaries(odd_strings, extreme_json_values, max_size=4).map(
            lambda fields: _fit(fields, MAX_ATTRIBUTES_BYTES, None)
        ),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            document[name] = draw(strategy)
    document.update(draw(outcomes(document["success"])))
    if "attributes" in document and draw(st.booleans()):  # exactly at the size limit
        document["attributes"] = _fit(document["attributes"], MAX_ATTRIBUTES_BYTES, "pad")
    unknown = draw(
        st.dictionaries(
            odd_strings.filter(lambda key: key not in KNOWN_FIELDS), extreme_json_values, max_size=4
        )
    )
    pad = "padding" if draw(st.booleans()) else None
    for name, value in _fit(unknown, MAX_UNKNOWN_FIELDS_BYTES, pad).items():
        document[name] = value
    return Accepted(document, instant, money)


def example_document(**changes: Any) -> dict[str, Any]:
    """One fixed valid event, with `changes` applied (a value of ... removes the field)."""
    document: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.UUID("6f1c2b8e-4d3a-4f5b-9c2d-1e0f3a4b5c6d")),
        "pattern_id": "test-retry-automation",
        "executed_at": "2026-05-01T12:30:00Z",
        "success": True,
        "execution_time_seconds": Decimal("12.5"),
        "estimated_time_seconds": 300,
        "actual_cost": "0.42",
        "estimated_cost": "25.00",
    }
    for name, value in changes.items():
        if value is ...:
            document.pop(name, None)
        else:
            document[name] = value
    return document
