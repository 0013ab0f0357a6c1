"""The compiled fast path (worker.contract.fast_path) agrees with the model on every input:
what it accepts the model accepts with identical values and fingerprint, it never accepts what
the model refuses, and parse_event with it gives what the model alone gives (errors included)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.strategies import NOW, example_document, json_values, valid_documents
from worker.contract import fast_path, json_codec
from worker.contract.event import ExecutionEvent
from worker.contract.outcome import OUTCOMES
from worker.contract.validate import parse_event_by_model, parse_with_fingerprint
from worker.errors import InvalidEventError

AGREEMENT = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ------------------------------------------------------------------ inputs: JSON text by hand
#
# An event is a list of (key, raw JSON text) pairs, so that numbers keep their spelling
# (1.10, 1e2, -0.0), keys can repeat and values can be anything.

_NUMBER_TEXT = st.from_regex(
    r"-?(0|[1-9][0-9]{0,12})(\.[0-9]{1,45})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
_ODD_NUMBERS = st.sampled_from(
    [
        "0",
        "-0",
        "-0.0",
        "0.00",
        "0e5",
        "1.10",
        "1e2",
        "1E+2",
        "100",
        "1000000000",
        "1000000000.0",
        "1000000000.01",
        "31622400",
        "31622400.000",
        "31622401",
        "1",
        "1.0",
        "1.000",
        "1.0001",
        "0.0000000000000000000000000000000000000001",
        "0.00000000000000000000000000000000000000001",
        "1e-40",
        "1e-41",
        "9223372036854775807",
        "9223372036854775808",
        "-1",
        "1.5e400",
        "1e999999999999999999",
        "true",
        "null",
        "[]",
    ]
)
_ODD_STRINGS = st.sampled_from(
    [
        "",
        "a",
        "a\x00b",
        "\ud800",
        "x\udfff",
        "é",
        "日本",
        "\u2028",
        " 1.5",
        "1.5 ",
        "1.10",
        "0001.50",
        "1e2",
        "-1",
        ".5",
        "5.",
        "1,5",
        "00000000-0000-0000-0000-000000000000",
        "6F1C2B8E-4D3A-4F5B-9C2D-1E0F3A4B5C6D",
        "6f1c2b8e4d3a4f5b9c2d1e0f3a4b5c6d",
        "{6f1c2b8e-4d3a-4f5b-9c2d-1e0f3a4b5c6d}",
        "success",
        "failure",
        "partial_success",
        "error",
        "Success",
        "x" * 200,
        "x" * 201,
        "y" * 8193,
    ]
)

_ODD_UUIDS = [
    "00000000-0000-0000-0000-000000000000",
    "00000000-0000-0000-0000-000000000001",
    "6F1C2B8E-4D3A-4F5B-9C2D-1E0F3A4B5C6D",
    "6f1c2b8e4d3a4f5b9c2d1e0f3a4b5c6d",
    "urn:uuid:6f1c2b8e-4d3a-4f5b-9c2d-1e0f3a4b5c6d",
    "6f1c2b8e-4d3a-4f5b-9c2d-1e0f3a4b5c6d ",
]


@st.composite
def _moment_texts(draw: st.DrawFn) -> str:
    """RFC 3339 date-times and near misses, around the bounds the contract sets."""
    base = draw(
        st.sampled_from(
            [
                NOW,
                NOW + timedelta(days=1),
                NOW + timedelta(days=1, seconds=1),
                datetime(2000, 1, 1, tzinfo=UTC),
                datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
                datetime(2024, 2, 29, tzinfo=UTC),
            ]
        )
    )
    moment = base + timedelta(
        seconds=draw(st.integers(-100_000, 100_000)) * draw(st.sampled_from([0, 1, 60, 3600]))
    )
    date = draw(st.sampled_from([f"{moment:%Y-%m-%d}", "2026-02-30", "2026-13-01", "1999-12-31"]))
    sep = draw(st.sampled_from("TTTt _"))
    hms = draw(st.sampled_from([f"{moment:%H:%M:%S}", "24:00:00", "23:59:60", "12:30"]))
    fraction = draw(
        st.sampled_from(["", "", ".5", ".123456", ".1234567", ".123456789", ".", ".0000000001"])
    )
    offset = draw(
        st.sampled_from(
            ["Z", "Z", "z", "+00:00", "-00:00", "+02:00", "-23:59", "+24:00", "+1:00", "", "+0200"]
        )
    )
    return f"{date}{sep}{hms}{fraction}{offset}"


_NUMBER_FIELDS = frozenset(
    name
    for name in ExecutionEvent.model_fields
    if name.endswith(("_seconds", "_tokens", "_score", "schema_version"))
)


def _str(text: str) -> str:
    return json.dumps(text)  # ASCII, surrogates as escapes


def _raw_values(name: str) -> st.SearchStrategy[str]:
    """JSON text for field `name`: what suits it best, odd values, and anything."""
    common = st.one_of(
        _ODD_NUMBERS,
        _NUMBER_TEXT,
        _ODD_STRINGS.map(_str),
        st.text(max_size=10).map(_str),
        st.sampled_from(["null", "true", "false", "{}", "[]", '{"a":1}', '"1"']),
    )
    suited = _suited(name)
    return st.one_of(suited, common) if suited is not None else common


def _suited(name: str) -> st.SearchStrategy[str] | None:
    """JSON text near the edges of field `name`'s rule, if it has an edge worth testing."""
    numbers = st.one_of(_ODD_NUMBERS, _NUMBER_TEXT)
    money = st.from_regex(r"[0-9]{1,12}(\.[0-9]{1,42})?", fullmatch=True).map(_str)
    suited = {
        "executed_at": _moment_texts().map(_str),
        "actual_cost": st.one_of(money, numbers),
        "estimated_cost": st.one_of(money, numbers),
        "attributes": json_values.map(_dump),
        "event_id": st.sampled_from(_ODD_UUIDS).map(_str),
        "outcome": st.sampled_from(["null", *(f'"{o}"' for o in OUTCOMES)]),
        **dict.fromkeys(_NUMBER_FIELDS, numbers),
    }
    return suited.get(name)


def _dump(value: Any) -> str:
    try:
        return json_codec.dumps(value)
    except (TypeError, ValueError):
        return "null"


def _pairs(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, _dump(value)) for name, value in document.items()]


def _without_unknown_fields(document: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in document.items() if name in ExecutionEvent.model_fields}


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A valid event with a few mutations: values replaced, fields removed, added, repeated."""
    # Mostly events the fast path would take before the mutations: unknown fields are the
    # model's, and valid_documents draws some.
    base = st.one_of(
        valid_documents(),
        valid_documents().map(_without_unknown_fields),
        st.just(example_document()),
    )
    pairs = _pairs(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add", "repeat"]))
        names = [name for name, _ in pairs]
        if action == "replace":
            fields = sorted(ExecutionEvent.model_fields)
            name = draw(
                st.sampled_from(fields)
                | st.sampled_from(sorted(_NUMBER_FIELDS))
                | st.sampled_from(["actual_cost", "estimated_cost", "executed_at"])
            )
            raw = draw(_raw_values(name))
            pairs = [(n, r) for n, r in pairs if n != name] + [(name, raw)]
        elif action == "drop" and pairs:
            index = draw(st.integers(0, len(pairs) - 1))
            pairs.pop(index)
        elif action == "add":
            key = draw(
                st.one_of(st.sampled_from(["extra", "outcome", "x\ud800"]), st.text(max_size=5))
            )
            pairs.append((key, draw(_raw_values(key))))
        elif action == "repeat" and names:
            name = draw(st.sampled_from(names))
            pairs.append((name, draw(_raw_values(name))))
    # Whitespace wherever JSON allows it: the fast path counts keys by their `":`.
    colon = draw(st.sampled_from([":", ":", ":", ": ", " :", "\t:", "\r\n :"]))
    comma = draw(st.sampled_from([",", ",", ", ", " ,", ",\n  ", "\n,"]))
    brace = draw(st.sampled_from(["", "", " ", "\n", "\t"]))
    members = comma.join(f"{_str(name)}{colon}{raw}" for name, raw in pairs)
    text = "{" + brace + members + brace + "}"
    return text.encode("utf-8", "surrogatepass")


@st.composite
def one_field_off(draw: st.DrawFn) -> bytes:
    """An event the fast path takes, with one field given a value suited to test its rule."""
    base = st.one_of(valid_documents().map(_without_unknown_fields), st.just(example_document()))
    pairs = _pairs(draw(base))
    name = draw(st.sampled_from(sorted(ExecutionEvent.model_fields)))
    suited = _suited(name)
    raw = draw(_raw_values(name) if suited is None else suited)
    pairs = [(n, r) for n, r in pairs if n != name] + [(name, raw)]
    text = "{" + ",".join(f"{_str(name)}:{raw}" for name, raw in pairs) + "}"
    return text.encode("utf-8", "surrogatepass")


anything = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: _dump(value).encode()),
    st.text(max_size=50).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


# ------------------------------------------------------------------ the agreement

_EXAMPLE = json_codec.dumps(example_document()).encode()


def _state(event: ExecutionEvent) -> tuple[Any, ...]:
    """Everything stored of an event, with types and spellings (Decimal('1.10') != '1.1')."""
    values = tuple((name, type(value), repr(value)) for name, value in event.__dict__.items())
    tz = event.executed_at.tzinfo
    return (
        values,
        tz is UTC,
        sorted(event.__pydantic_fields_set__),
        repr(event.__pydantic_extra__),
        repr(event.__pydantic_private__),
        repr(event.unknown_fields),
        event.resolved_outcome,
        event.to_json(),
        event.fingerprint(),
    )


def _by_model(raw: bytes) -> tuple[Any, ...]:
    try:
        event = parse_event_by_model(raw, now=NOW)
    except InvalidEventError as exc:
        return ("refused", exc.reason, exc.rules, str(exc))
    return ("accepted", _state(event), event.fingerprint())


def _combined(raw: bytes) -> tuple[Any, ...]:
    try:
        event, fingerprint = parse_with_fingerprint(raw, now=NOW)
    except InvalidEventError as exc:
        return ("refused", exc.reason, exc.rules, str(exc))
    return ("accepted", _state(event), fingerprint)


def assert_agree(raw: bytes) -> None:
    expected = _by_model(raw)
    accepted = fast_path.accept(raw, NOW)
    if accepted is not None:
        event, fingerprint = accepted
        assert expected[0] == "accepted", (raw, expected)
        assert ("accepted", _state(event), fingerprint) == expected
    assert _combined(raw) == expected


@settings(AGREEMENT)
@given(near_valid())
@example(json_codec.dumps(example_document()).encode())
@example(json_codec.dumps(example_document(actual_cost="1.10", execution_time_seconds=0)).encode())
@example(json_codec.dumps(example_document(event_id=_ODD_UUIDS[0])).encode())
@example(
    json_codec.dumps(example_document()).encode()[:-1] + b',"deep":' + b"[" * 70 + b"]" * 70 + b"}"
)
@example(json_codec.dumps(example_document()).encode()[:-1] + b',"attributes":{"a":1,"a":2}}')
@example(_EXAMPLE[:-1] + b',"succ\\u0065ss":false}')  # the same key, escaped
@example(_EXAMPLE[:-1] + b',"success" :false}')
@example(_EXAMPLE[:-1] + b', "success"\n:false}')
@example(_EXAMPLE[:-1] + b',"attributes":' + b'{"a":' * 63 + b"1" + b"}" * 64)  # 64 deep
@example(_EXAMPLE[:-1] + b',"attributes":' + b'{"a":' * 64 + b"1" + b"}" * 65)  # 65 deep
@example(_EXAMPLE[:-1] + b',"attributes":{"a":[{"b":1},{"b":2,"b":3}]}}')
@example(
    json_codec.dumps(example_document()).encode()[:-1]
    + b',"error_message":'
    + json.dumps('x\\":\x00\ud800 ').encode()
    + b"}"
)
@example(json_codec.dumps(example_document(outcome=None)).encode())
@example(json_codec.dumps(example_document(success=False, outcome="success")).encode())
@example(json_codec.dumps(example_document(actual_cost=Decimal("-0.0"))).encode())
@example(json_codec.dumps(example_document(actual_cost=Decimal("0E+5"))).encode())
@example(json_codec.dumps(example_document(quality_score=Decimal("1E-41"))).encode())
def test_the_fast_path_agrees_on_near_valid_events(raw: bytes) -> None:
    assert_agree(raw)


@settings(AGREEMENT)
@given(one_field_off())
def test_the_fast_path_agrees_when_one_field_is_off(raw: bytes) -> None:
    assert_agree(raw)


@settings(AGREEMENT)
@given(anything)
def test_the_fast_path_agrees_on_anything(raw: bytes) -> None:
    assert_agree(raw)


@pytest.mark.parametrize(
    "executed_at",
    [
        "2026-05-01T24:00:00Z",  # Python 3.14 reads it as the next midnight: left to the model
        "0001-01-01T00:00:00+01:00",  # instants a datetime cannot hold in UTC
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_the_fast_path_leaves_odd_instants_to_the_model(executed_at: str) -> None:
    raw = json.dumps(example_document(executed_at=executed_at), default=str).encode()
    assert fast_path.accept(raw, NOW) is None
    assert_agree(raw)


def test_the_fast_path_takes_the_usual_event() -> None:
    """Otherwise the agreement above would hold trivially."""
    raw = json_codec.dumps(example_document(workflow_id="wf-1")).encode()
    assert fast_path.accept(raw, NOW) is not None
    spaced = raw.replace(b'":', b'": ').replace(b',"', b', "')  # json.dumps's separators
    assert fast_path.accept(spaced, NOW) is not None
    attributes = {"a": [1, {"b": "c:d"}], "e": {"f": None}}
    nested = json_codec.dumps(example_document(attributes=attributes)).encode()
    assert fast_path.accept(nested, NOW) is not None


def test_the_fingerprint_of_a_known_event_stays_pinned() -> None:
    """Stored content_sha256 values decide duplicates: these bytes must never change."""
    raw = json_codec.dumps(
        example_document(
            event_id=str(uuid.UUID("6f1c2b8e-4d3a-4f5b-9c2d-1e0f3a4b5c6d")),
            execution_time_seconds=Decimal("12.50"),
            estimated_time_seconds=300,
            actual_cost="0.420",
            workflow_id="wf-1",
            outcome="partial_success",
        )
    ).encode()
    _, fast_fingerprint = parse_with_fingerprint(raw, now=NOW)
    model_fingerprint = parse_event_by_model(raw, now=NOW).fingerprint()
    assert fast_fingerprint == model_fingerprint == bytes.fromhex(PINNED)


PINNED = "2d3ca9db8e9cbd9019629f10f66d5b00ef0168d5ff2cf70b8bdda1f9c795df1b"
