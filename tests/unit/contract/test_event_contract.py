"""Event contract v1: what is accepted, exactly how it round-trips, and how each rule rejects."""

from __future__ import annotations

import hashlib
import json
import string
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, Overflow, Subnormal, Underflow, localcontext
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.strategies import (
    NOW,
    REQUIRED_FIELDS,
    Accepted,
    accepted_events,
    example_document,
    json_values,
    storable,
    valid_documents,
)
from worker.contract import json_codec
from worker.contract.event import MAX_USD, ExecutionEvent
from worker.contract.validate import parse_event, validate
from worker.errors import InvalidEventError, InvalidReason


def wire(document: dict[str, Any]) -> bytes:
    return json_codec.dumps(document).encode()


def rejection(value: bytes | dict[str, Any]) -> InvalidEventError:
    """The error parse_event raises for `value` (a document is encoded first)."""
    raw = value if isinstance(value, bytes) else wire(value)
    with pytest.raises(InvalidEventError) as caught:
        parse_event(raw, now=NOW)
    return caught.value


def assert_names(error: InvalidEventError, field: str, rule: str | None = None) -> None:
    assert error.reason is InvalidReason.SCHEMA_VIOLATION, error
    matching = [e for e in error.errors if e.field == field and (rule is None or e.rule == rule)]
    assert matching, f"expected an error on {field} ({rule}), got: {error}"
    assert field in str(error)


# --------------------------------------------------------------------------- valid events


@given(valid_documents())
def test_every_valid_event_is_accepted_with_exact_values(document: dict[str, Any]) -> None:
    """Any event within the contract is accepted, money and times to the last digit."""
    event = parse_event(wire(document), now=NOW)
    assert event.event_id == uuid.UUID(document["event_id"])
    assert event.pattern_id == document["pattern_id"]
    for name in (
        "actual_cost",
        "estimated_cost",
        "execution_time_seconds",
        "estimated_time_seconds",
    ):
        sent = document[name]
        expected = Decimal(sent)
        assert getattr(event, name) == expected
        assert getattr(event, name).as_tuple() == expected.as_tuple()
    for name in ("workflow_id", "error_message", "actual_tokens", "attributes"):
        assert getattr(event, name) == document.get(name)
    unknown = {k: v for k, v in document.items() if k not in ExecutionEvent.model_fields}
    assert event.unknown_fields == unknown


@given(valid_documents())
def test_events_round_trip_exactly(document: dict[str, Any]) -> None:
    """Encoding an event and parsing it back yields the same event, digit for digit."""
    event = parse_event(wire(document), now=NOW)
    again = parse_event(event.to_json(), now=NOW)
    assert again == event
    assert again.to_json() == event.to_json()
    assert again.actual_cost.as_tuple() == event.actual_cost.as_tuple()


@pytest.mark.parametrize(
    "amount",
    ["0.30000000000000004", "12345678901234.000000000000000001", "999999999.999999999999999999"],
)
def test_money_never_passes_through_float(amount: str) -> None:
    """Amounts a binary float cannot hold survive intact, as strings and as JSON numbers."""
    if Decimal(amount) > MAX_USD:
        document = example_document(actual_cost=amount)
        assert_names(rejection(document), "actual_cost", "le")
        return
    as_string = parse_event(wire(example_document(actual_cost=amount)), now=NOW)
    as_number = parse_event(wire(example_document(actual_cost=Decimal(amount))), now=NOW)
    assert str(as_string.actual_cost) == amount
    assert str(as_number.actual_cost) == amount
    assert float(amount) != Decimal(amount) or amount == "0"


def test_nanosecond_timestamps_keep_microseconds() -> None:
    """Nine fractional digits (Go, Java) are accepted; PostgreSQL's microseconds are kept."""
    document = example_document(executed_at="2026-05-01T12:30:00.123456789+02:00")
    event = parse_event(wire(document), now=NOW)
    assert event.executed_at == datetime(2026, 5, 1, 10, 30, 0, 123456, tzinfo=UTC)


def test_optional_fields_may_be_null() -> None:
    """A null optional field means the same as an absent one."""
    event = parse_event(wire(example_document(workflow_id=None, attributes=None)), now=NOW)
    assert event.workflow_id is None
    assert event.attributes is None


# --------------------------------------------------------------------------- bytes and JSON


@given(st.binary(max_size=40), st.sampled_from([b"\xff", b"\xc0\xaf", b"\x80", b"\xed\xa0\x80"]))
def test_bytes_that_are_not_utf8_are_rejected(prefix: bytes, bad: bytes) -> None:
    """Any value containing an invalid UTF-8 sequence is `not_utf8`."""
    error = rejection(prefix + bad)
    assert error.reason is InvalidReason.NOT_UTF8
    assert "UTF-8" in str(error)


@given(st.text(max_size=40))
def test_text_that_is_not_json_is_rejected(text: str) -> None:
    """UTF-8 text that is not JSON is `invalid_json`."""
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        assume(False)
    error = rejection(text.encode())
    assert error.reason is InvalidReason.INVALID_JSON


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "empty"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": -Infinity}', "-Infinity"),
        (b'{"success": true, "success": false}', "duplicate key 'success'"),
        (b"{'single': 'quotes'}", "line 1, column 2"),
        (b'{"a": 1,}', "line 1, column"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_json_is_rejected_with_the_reason(raw: bytes, detail: str) -> None:
    """NaN, Infinity, duplicate keys and syntax errors are `invalid_json`, saying which."""
    error = rejection(raw)
    assert error.reason is InvalidReason.INVALID_JSON
    assert detail in str(error)


@given(json_values.filter(lambda value: not isinstance(value, dict)))
def test_json_that_is_not_an_object_is_rejected(value: Any) -> None:
    """Arrays, strings, numbers, booleans and null are `not_an_object`."""
    error = rejection(json_codec.dumps(value).encode())
    assert error.reason is InvalidReason.NOT_AN_OBJECT


# --------------------------------------------------------------------------- schema violations


@pytest.mark.parametrize("field", REQUIRED_FIELDS[1:])
def test_each_missing_required_field_is_named(field: str) -> None:
    """Leaving out a required field is a schema violation naming that field."""
    assert_names(rejection(example_document(**{field: ...})), field, "missing")


def test_missing_schema_version_is_a_violation() -> None:
    """An event without schema_version is rejected naming it (not guessed to be v1)."""
    assert_names(rejection(example_document(schema_version=...)), "schema_version", "missing")


def test_all_broken_rules_are_reported_at_once() -> None:
    """Every invalid field is reported, so a producer fixes them in one go."""
    error = rejection(example_document(success="yes", actual_cost="-1", pattern_id="a b"))
    assert set(error.fields) == {"success", "actual_cost", "pattern_id"}


# Each field's JSON types: any value of another type is rejected naming the field.
_TYPES: dict[str, tuple[type, ...]] = {
    "event_id": (str,),
    "pattern_id": (str,),
    "executed_at": (str,),
    "success": (bool,),
    "execution_time_seconds": (int, Decimal),
    "estimated_time_seconds": (int, Decimal),
    "actual_cost": (int, Decimal, str),
    "estimated_cost": (int, Decimal, str),
    "workflow_id": (str, type(None)),
    "error_message": (str, type(None)),
    "correlation_id": (str, type(None)),
    "quality_score": (int, Decimal, type(None)),
    "actual_tokens": (int, type(None)),
    "baseline_tokens": (int, type(None)),
    "source": (str, type(None)),
    "attributes": (dict, type(None)),
}


def _json_type(value: Any) -> type:
    """JSON Schema's view of a value's type: 2.0 is an integer, like 2."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int
    return bool if isinstance(value, bool) else type(value)


@given(st.sampled_from(sorted(_TYPES)), json_values)
def test_wrong_types_are_rejected_naming_the_field(field: str, value: Any) -> None:
    """A value of a JSON type the field does not take is rejected naming the field."""
    assume(_json_type(value) not in _TYPES[field])
    assert_names(rejection(example_document(**{field: value})), field)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("event_id", "6f1c2b8e4d3a4f5b9c2d1e0f3a4b5c6d", "uuid"),
        ("event_id", "{6f1c2b8e-4d3a-4f5b-9c2d-1e0f3a4b5c6d}", "uuid"),
        ("event_id", "00000000-0000-0000-0000-000000000000", "uuid"),
        ("success", 1, "bool_type"),
        ("success", "true", "bool_type"),
        ("execution_time_seconds", "12.5", "number_type"),
        ("execution_time_seconds", Decimal("31622400.000001"), "le"),
        ("actual_cost", "1e5", "decimal_string"),
        ("actual_cost", "12,50", "decimal_string"),
        ("actual_cost", " 1", "decimal_string"),
        ("actual_cost", Decimal("1E-41"), "decimal_places"),
        ("actual_cost", Decimal("1000000000.01"), "le"),
        ("quality_score", Decimal("1.01"), "le"),
        ("actual_tokens", Decimal("1.5"), "integer_type"),
        ("actual_tokens", 2**63, "le"),
        ("workflow_id", "", "string_too_short"),
        ("error_message", "x" * 8193, "string_too_long"),
        ("attributes", {"blob": "x" * 9000}, "object_too_large"),
        ("executed_at", "2026-05-01", "rfc3339"),
        ("executed_at", "2026-02-30T00:00:00Z", "rfc3339"),
        ("executed_at", "2026-05-01T25:00:00Z", "rfc3339"),
        ("executed_at", "1 May 2026", "rfc3339"),
    ],
)
def test_rule_violations_name_field_and_rule(field: str, value: Any, rule: str) -> None:
    """Each rule rejects its example with a stable rule code on the right field."""
    assert_names(rejection(example_document(**{field: value})), field, rule)


def test_unknown_fields_are_kept_but_bounded() -> None:
    """Unknown fields are stored as sent, up to a size that protects the database."""
    kept = parse_event(wire(example_document(team="platform")), now=NOW)
    assert kept.unknown_fields == {"team": "platform"}
    error = rejection(example_document(blob="x" * 20_000))
    assert_names(error, "(event)", "unknown_fields_too_large")


@given(
    st.sampled_from(["execution_time_seconds", "estimated_time_seconds", "actual_cost"]),
    st.decimals(max_value=Decimal("-1E-18"), allow_nan=False, allow_infinity=False, places=6),
)
def test_negative_times_and_costs_are_rejected(field: str, value: Decimal) -> None:
    """Durations and amounts below zero are rejected naming the field."""
    assume(value < 0)
    assert_names(rejection(example_document(**{field: value})), field, "ge")


@given(
    st.sampled_from(["actual_cost", "execution_time_seconds", "quality_score"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "sNaN"]),
)
def test_nan_and_infinity_from_python_callers_are_rejected(field: str, text: str) -> None:
    """Non-finite Decimals, which JSON cannot carry, are refused when passed directly."""
    with pytest.raises(InvalidEventError) as caught:
        validate(example_document(**{field: Decimal(text)}), now=NOW)
    assert_names(caught.value, field, "finite_number")


def test_floats_from_python_callers_are_rejected() -> None:
    """A binary float is refused, so money can never be rounded on its way in."""
    with pytest.raises(InvalidEventError) as caught:
        validate(example_document(actual_cost=0.1), now=NOW)
    assert_names(caught.value, "actual_cost", "float_not_allowed")


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2026, 5, 1)))
def test_naive_timestamps_are_rejected(moment: datetime) -> None:
    """A time without a UTC offset is ambiguous, so it is rejected as timezone_naive."""
    text = moment.isoformat()
    assert_names(rejection(example_document(executed_at=text)), "executed_at", "timezone_naive")


@given(
    st.one_of(
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(1999, 12, 31)),
        st.datetimes(min_value=datetime(2026, 6, 2, 0, 0, 1), max_value=datetime(9999, 12, 30)),
    )
)
def test_absurd_timestamps_are_rejected(moment: datetime) -> None:
    """Before 2000 or more than a day ahead of now is a clock or unit bug, not an execution."""
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"  # strftime does not pad years < 1000
    error = rejection(example_document(executed_at=text))
    assert_names(error, "executed_at")
    assert error.errors[0].rule in {"too_early", "in_future"}


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("0001-01-01T00:00:00+01:00", "too_early"),
        ("9999-12-31T23:59:59-01:00", "in_future"),
        ("9999-12-31T23:59:59.999999-15:59", "in_future"),
    ],
)
def test_an_instant_a_datetime_cannot_hold_in_utc_is_refused_not_raised(
    text: str, rule: str
) -> None:
    """Year 1 an hour ahead of UTC, or year 9999 behind it, is no instant datetime can hold in
    UTC: refused by the bounds like any absurd time, never an OverflowError (which would stop
    the worker on that message, every time it restarted)."""
    assert_names(rejection(example_document(executed_at=text)), "executed_at", rule)


def test_the_future_bound_follows_the_clock() -> None:
    """executed_at may be up to a day ahead of now (clock skew), not more."""
    ahead = (NOW + timedelta(hours=23)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert parse_event(wire(example_document(executed_at=ahead)), now=NOW)
    too_far = (NOW + timedelta(days=1, seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert_names(rejection(example_document(executed_at=too_far)), "executed_at", "in_future")


@given(
    st.one_of(st.integers().filter(lambda v: v != 1), st.text(storable), st.booleans(), st.none())
)
def test_unknown_schema_versions_are_unsupported(version: Any) -> None:
    """Any schema_version but the integer 1 is `unsupported_schema_version`, naming the value."""
    error = rejection(example_document(schema_version=version))
    assert error.reason is InvalidReason.UNSUPPORTED_SCHEMA_VERSION
    assert error.fields == ("schema_version",)


@given(
    st.sampled_from(["pattern_id", "workflow_id", "correlation_id", "source"]),
    st.integers(201, 1000),
)
def test_over_long_identifiers_are_rejected(field: str, length: int) -> None:
    """Identifiers longer than 200 characters are rejected naming the field."""
    assert_names(rejection(example_document(**{field: "p" * length})), field)


@given(st.text(storable, min_size=1, max_size=200))
def test_pattern_ids_outside_the_alphabet_are_rejected(pattern_id: str) -> None:
    """A pattern_id with any character outside [A-Za-z0-9._:/-] is rejected."""
    allowed = set(string.ascii_letters + string.digits + "._:/-")
    assume(not set(pattern_id) <= allowed)
    assert_names(rejection(example_document(pattern_id=pattern_id)), "pattern_id", "pattern_id")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pattern_id", "test-retry-automation\n"),
        ("actual_cost", "12.50\n"),
        ("event_id", "6f1c2b8e-4d3a-4f5b-9c2d-1e0f3a4b5c6d\n"),
        ("executed_at", "2026-05-01T12:30:00Z\n"),
    ],
)
def test_a_trailing_newline_is_not_ignored(field: str, value: str) -> None:
    """Patterns match the whole value: a trailing newline is a different, invalid value."""
    assert_names(rejection(example_document(**{field: value})), field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"workflow_id": "wf\u0000"}, "workflow_id"),
        ({"error_message": "bad \ud800 surrogate"}, "error_message"),
        ({"attributes": {"k": "nul\u0000"}}, "attributes"),
        ({"attributes": {"\udc00": 1}}, "attributes"),
    ],
)
def test_strings_postgresql_cannot_store_are_rejected(changes: dict[str, Any], field: str) -> None:
    """NUL and unpaired surrogates (valid JSON escapes) are refused before reaching the database."""
    raw = json.dumps(example_document(**changes), default=str).encode()
    assert_names(rejection(raw), field)


def test_huge_exponents_are_rejected_quickly() -> None:
    """A token count of 1e999999999 is refused by comparison, never expanded to an integer."""
    result: list[BaseException] = []
    worker = threading.Thread(
        target=lambda: result.append(
            rejection(example_document(actual_tokens=Decimal("1E+999999999")))
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=10)
    assert result, "validating a huge exponent did not finish within 10 s"


@pytest.mark.parametrize("depth", [65, 3000])
def test_deep_nesting_is_invalid_json(depth: int) -> None:
    """More than 64 nested levels is rejected the same way on every Python version."""
    raw = wire(example_document()).replace(
        b"{", b'{"deep":' + b"[" * depth + b"]" * depth + b",", 1
    )
    error = rejection(raw)
    assert error.reason is InvalidReason.INVALID_JSON


def test_deep_attributes_from_python_callers_are_rejected() -> None:
    """A nested structure too deep to store is a schema violation, not a crash."""
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(InvalidEventError) as caught:
        validate(example_document(attributes=deep), now=NOW)
    assert_names(caught.value, "attributes", "json_value")


@pytest.mark.parametrize("version", [Decimal("1.0"), "1", True])
def test_schema_version_must_be_the_integer_one(version: Any) -> None:
    """1.0, "1" and true are not the integer 1."""
    assert rejection(example_document(schema_version=version)).reason is (
        InvalidReason.UNSUPPORTED_SCHEMA_VERSION
    )


@pytest.mark.parametrize("offset", ["+05:60", "+24:00", "-99:00", "+0530"])
def test_impossible_offsets_are_rejected(offset: str) -> None:
    """UTC offsets must be real: hours 00-23, minutes 00-59, with a colon."""
    document = example_document(executed_at=f"2026-05-01T12:30:00{offset}")
    assert_names(rejection(document), "executed_at", "rfc3339")


def test_tiny_float_amounts_are_accepted_exactly() -> None:
    """A float a JavaScript producer prints (3e-6 * 7) is stored digit for digit."""
    raw = wire(example_document()).replace(b'"0.42"', b"2.1000000000000002e-05")
    assert str(parse_event(raw, now=NOW).actual_cost) == "0.000021000000000000002"


def test_error_messages_quote_the_offending_value_as_json() -> None:
    """An error says field, rule and the value received, the way the producer wrote it."""
    error = rejection(example_document(success="yes"))
    assert str(error.errors[0]) == 'success: must be true or false, not a string (got "yes")'
    assert error.errors[0].rule == "bool_type"


def _reference_canonical(value: Any) -> Any:
    """The canonical form as first defined: numbers as NUL-prefixed normalized strings."""
    if isinstance(value, dict):
        return {key: _reference_canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_reference_canonical(item) for item in value]
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return "\x00" + str(Decimal(value).normalize() if value else 0)
    return value


@given(valid_documents())
def test_the_fingerprint_keeps_its_canonical_form(document: dict[str, Any]) -> None:
    """Stored content_sha256 values depend on the exact canonical text: the fast encoder must
    write what the first definition (sorted json.dumps of the canonicalised document) wrote."""
    event = validate(document, now=NOW)
    reference = event.to_document()
    reference["executed_at"] = event.executed_at.astimezone(UTC).isoformat()
    text = json.dumps(
        _reference_canonical(reference), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert event.fingerprint() == hashlib.sha256(text.encode()).digest()


def test_the_fingerprint_compares_content_not_spelling() -> None:
    original = example_document(attributes={"n": 100, "k": "v"}, extra_field=[1, "1"])
    base = validate(original, now=NOW)
    same = validate(
        {
            "extra_field": [Decimal("1.0"), "1"],
            **example_document(
                executed_at="2026-05-01T14:30:00+02:00",  # the same instant
                actual_cost=Decimal("0.420"),
                estimated_cost=Decimal("25"),
                attributes={"k": "v", "n": Decimal("1E+2")},
            ),
        },
        now=NOW,
    )
    assert same.fingerprint() == base.fingerprint()
    for change in (
        {"actual_cost": "0.43"},
        {"success": False},
        {"attributes": {"n": "100", "k": "v"}},  # a string is not a number
        {"extra_field": [1, 1]},
        {"workflow_id": "wf"},
    ):
        other = validate({**original, **change}, now=NOW)
        assert other.fingerprint() != base.fingerprint(), change


@given(accepted_events())
def test_the_fingerprint_of_every_storable_event_keeps_its_canonical_form(
    accepted: Accepted,
) -> None:
    """Across the whole accepted space the fingerprint never raises, and equals the first
    definition wherever that could normalise every number: all PostgreSQL ever stored."""
    event = parse_event(wire(accepted.document), now=NOW)
    fingerprint = event.fingerprint()
    reference = event.to_document()
    reference["executed_at"] = event.executed_at.astimezone(UTC).isoformat()
    with localcontext() as context:
        context.traps[Subnormal] = context.traps[Underflow] = True  # Overflow traps already
        try:
            canonical = _reference_canonical(reference)
        except (Overflow, Underflow, Subnormal):
            return  # jsonb refused such numbers, and normalising them raised: none is stored
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert fingerprint == hashlib.sha256(text.encode()).digest()


@pytest.mark.parametrize(
    ("number", "same", "other"),
    [
        ("1E+9999999", "10E+9999998", "2E+9999999"),
        ("1E-9999999", "0.1E-9999998", "1E-9999998"),
        ("9" * 40 + "E+999970", "9" * 40 + "0E+999969", "9" * 39 + "8E+999970"),
        ("1E+999999999999999999", "1.0E+999999999999999999", "2E+999999999999999999"),
        ("1E-1999999999999999990", "1.000E-1999999999999999990", "2E-1999999999999999990"),
    ],
)
def test_numbers_beyond_the_canonical_context_are_fingerprinted_by_value(
    number: str, same: str, other: str
) -> None:
    """1e9999999 in an unknown field used to raise Overflow while fingerprinting (stopping the
    worker), and 1e-9999999 fingerprinted as 0: now each has its own exact canonical form."""
    fingerprint = validate(example_document(n=Decimal(number)), now=NOW).fingerprint()
    assert validate(example_document(n=Decimal(same)), now=NOW).fingerprint() == fingerprint
    for different in (0, Decimal(other)):
        assert validate(example_document(n=different), now=NOW).fingerprint() != fingerprint


@pytest.mark.parametrize(
    ("offset", "shift"),
    [
        ("+23:59", timedelta(hours=-23, minutes=-59)),
        ("-23:59", timedelta(hours=23, minutes=59)),
        ("+16:00", timedelta(hours=-16)),
        ("-16:00", timedelta(hours=16)),
        ("+15:59", timedelta(hours=-15, minutes=-59)),
        ("-00:00", timedelta(0)),
        ("z", timedelta(0)),
    ],
)
def test_executed_at_is_kept_in_utc_whatever_the_offset(offset: str, shift: timedelta) -> None:
    """Every offset RFC 3339 allows is accepted and kept as the same instant, in UTC (the
    only zone PostgreSQL's timestamptz takes for offsets beyond 15:59)."""
    event = parse_event(wire(example_document(executed_at=f"2026-05-01T12:30:00{offset}")), now=NOW)
    assert event.executed_at.tzinfo is UTC
    assert event.executed_at == datetime(2026, 5, 1, 12, 30, tzinfo=UTC) + shift
    same = example_document(executed_at=(event.executed_at.isoformat()))
    assert validate(same, now=NOW).fingerprint() == event.fingerprint()


def test_a_zero_amount_with_a_huge_exponent_is_zero() -> None:
    """0e999999999999999999 is a valid zero; it is kept as 0, which numeric can store."""
    event = parse_event(
        wire(example_document(actual_cost=Decimal("0E+999999999999999999"), quality_score=0)),
        now=NOW,
    )
    assert event.actual_cost == 0
    assert event.actual_cost.as_tuple().exponent == 0


def test_a_number_decimal_cannot_read_is_invalid_json() -> None:
    """An exponent beyond Decimal's range (about 10**18) is refused as invalid_json, not raised
    as decimal.InvalidOperation out of the decode stage."""
    raw = wire(example_document()).replace(b'"success"', b'"n":1e99999999999999999999,"success"')
    error = rejection(raw)
    assert error.reason is InvalidReason.INVALID_JSON
    assert "exponent" in str(error)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"team": "a\u0000b"}, '"team"'),
        ({"team": ["ok", {"k": "\ud800"}]}, '"team"'),
        ({"nul\u0000key": 1}, '"nul\\u0000key"'),
        ({"t" * 500: "\u0000"}, '"' + "t" * 55 + '..."'),
    ],
)
def test_an_unstorable_unknown_field_is_named(changes: dict[str, Any], named: str) -> None:
    """NUL and unpaired surrogates stay refused in unknown fields too, and the error says which
    field, quoted as ASCII and shortened."""
    with pytest.raises(InvalidEventError) as caught:
        validate(example_document(**changes), now=NOW)
    assert_names(caught.value, "(event)", "json_value")
    assert f"unknown field {named} must hold only JSON values" in str(caught.value)


# --------------------------------------------------------------------------- outcome


@pytest.mark.parametrize(
    ("success", "outcome"),
    [
        (True, "success"),
        (True, "partial_success"),
        (False, "failure"),
        (False, "error"),
        (False, "partial_success"),
    ],
)
def test_an_outcome_that_agrees_with_success_is_kept(success: bool, outcome: str) -> None:
    """Each pair of the consistency table (docs/event-contract.md) is accepted as sent."""
    event = validate(example_document(success=success, outcome=outcome), now=NOW)
    assert event.outcome == event.resolved_outcome == outcome
    assert event.success is success
    assert event.unknown_fields == {}


@pytest.mark.parametrize(("success", "derived"), [(True, "success"), (False, "failure")])
@pytest.mark.parametrize("absent", [{"outcome": ...}, {"outcome": None}])
def test_without_an_outcome_it_is_derived_from_success(
    success: bool, derived: str, absent: dict[str, Any]
) -> None:
    """Absent (or null), the outcome is success or failure by `success`: every event valid
    before outcome was defined means the same."""
    event = validate(example_document(success=success, **absent), now=NOW)
    assert event.outcome is None
    assert event.resolved_outcome == derived


@pytest.mark.parametrize(
    ("success", "outcome", "allowed"),
    [
        (True, "failure", "success or partial_success"),
        (True, "error", "success or partial_success"),
        (False, "success", "failure, error or partial_success"),
    ],
)
def test_an_outcome_that_contradicts_success_names_both_fields(
    success: bool, outcome: str, allowed: str
) -> None:
    """An inconsistent pair is a schema violation on `outcome` whose message names `success`."""
    error = rejection(example_document(success=success, outcome=outcome))
    assert_names(error, "outcome", "outcome_contradicts_success")
    flag = "true" if success else "false"
    message = f"outcome: contradicts success={flag}: with success={flag}, outcome must be {allowed}"
    assert message in str(error)


@pytest.mark.parametrize("outcome", ["SUCCESS", "ok", "", 1, True, ["success"], {"a": 1}])
def test_an_unknown_outcome_is_rejected(outcome: Any) -> None:
    """Only the four outcomes are accepted, spelled exactly."""
    assert_names(rejection(example_document(outcome=outcome)), "outcome", "outcome")


def test_an_invalid_success_does_not_add_an_outcome_error() -> None:
    """With `success` itself invalid, only `success` is named: nothing to check outcome against."""
    error = rejection(example_document(success="yes", outcome="error"))
    assert [e.field for e in error.errors] == ["success"]


def _fingerprint_before_outcome_was_defined(document: dict[str, Any]) -> bytes:
    """content_sha256 as stored before contract v1 defined `outcome`: the first canonical form
    with `outcome`, when sent, among the unknown fields."""
    sent = dict(document)
    outcome = sent.pop("outcome", ...)
    event = validate(sent, now=NOW)
    reference = event.to_document()
    reference["executed_at"] = event.executed_at.astimezone(UTC).isoformat()
    if outcome is not ...:
        reference["outcome"] = outcome
    text = json.dumps(
        _reference_canonical(reference), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode()).digest()


@pytest.mark.parametrize("outcome", [..., None, "success", "partial_success"])
@pytest.mark.parametrize("unknown", [{}, {"team": "platform", "zz": [1, None]}])
def test_an_event_stored_before_outcome_was_defined_keeps_its_fingerprint(
    outcome: Any, unknown: dict[str, Any]
) -> None:
    """Re-delivered after the change, an event stored before it (with `outcome` then an
    unknown field, or without one) has the same content fingerprint: a duplicate, never a
    conflict. Its document (to_json) is unchanged too."""
    document = {**example_document(outcome=outcome), **unknown}
    event = validate(document, now=NOW)
    assert event.fingerprint() == _fingerprint_before_outcome_was_defined(document)
    published = json.loads(event.to_json())
    assert ("outcome" in published) == (outcome is not ...)


def test_the_outcome_is_part_of_the_content() -> None:
    """A re-used event_id with another outcome (or none instead of one) is a conflict."""
    base = validate(example_document(success=False, outcome="error"), now=NOW).fingerprint()
    for outcome in ("failure", "partial_success", None, ...):
        other = validate(example_document(success=False, outcome=outcome), now=NOW)
        assert other.fingerprint() != base, outcome
