"""Strict JSON: exact numbers in both directions, nothing JSON does not define."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given

from tests.strategies import json_values
from worker.contract import json_codec


@given(json_values)
def test_dumps_then_loads_is_identity(value: Any) -> None:
    """Any JSON value survives a round trip, Decimal digits included."""
    text = json_codec.dumps(value)
    assert json_codec.loads(text) == value
    assert json.loads(text) is not None or value is None  # standard parsers accept the output


def test_decimals_keep_every_digit() -> None:
    """Decimals are written as numbers with their exact digits and read back the same."""
    text = json_codec.dumps({"a": Decimal("0.30000000000000004"), "b": Decimal("1E-7")})
    assert text == '{"a":0.30000000000000004,"b":1E-7}'
    assert json_codec.loads(text)["a"].as_tuple() == Decimal("0.30000000000000004").as_tuple()


@pytest.mark.parametrize("value", [0.5, {"a": float("nan")}, [object()], {1: "x"}])
def test_dumps_refuses_floats_and_non_json(value: Any) -> None:
    """Floats (inexact) and non-JSON types are refused rather than approximated."""
    with pytest.raises(TypeError):
        json_codec.dumps(value)


def test_dumps_refuses_non_finite_decimals() -> None:
    """NaN and Infinity are not JSON numbers."""
    with pytest.raises(ValueError, match="not a JSON number"):
        json_codec.dumps(Decimal("NaN"))


def test_a_byte_order_mark_is_named() -> None:
    with pytest.raises(json_codec.JsonError, match="Unexpected UTF-8 BOM"):
        json_codec.loads('\ufeff{"a": 1}')


@given(json_values)
def test_dumps_jsonb_writes_ordinary_values_as_dumps_does(value: Any) -> None:
    """Numbers of everyday size are written as numbers, so jsonb keeps their values."""
    assert json_codec.dumps_jsonb(value) == json_codec.dumps(value)


@pytest.mark.parametrize(
    ("number", "written"),
    [
        (Decimal("1E-99999"), '"1E-99999"'),
        (Decimal("1E+99999"), '"1E+99999"'),
        (Decimal("1E+1000"), "1E+1000"),
        (Decimal("1E+1001"), '"1E+1001"'),
        (Decimal("1.25E+1000"), "1.25E+1000"),  # 125e998
        (Decimal("1E-1000"), "1E-1000"),
        (Decimal("1.5E-1000"), '"1.5E-1000"'),  # 15e-1001
        (Decimal("-0.0"), "-0.0"),
        (Decimal("0E+999999999999999999"), '"0E+999999999999999999"'),
        (Decimal("4.9406564584124654E-324"), "4.9406564584124654E-324"),
        (-(10**4000), "-1" + "0" * 4000),
    ],
)
def test_dumps_jsonb_writes_numbers_beyond_the_exponent_bound_as_text(
    number: Decimal | int, written: str
) -> None:
    """Beyond +-JSONB_MAX_EXPONENT a number becomes a string of the same digits and exponent;
    within it, the number as dumps writes it."""
    assert json_codec.JSONB_MAX_EXPONENT == 1000
    assert json_codec.dumps_jsonb({"n": [number]}) == '{"n":[' + written + "]}"


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value", [{"a": "nul\u0000"}, ["\ud800"], {"a": Decimal("NaN")}, 0.5, _nested(65)]
)
def test_dumps_jsonb_refuses_what_dumps_refuses(value: Any) -> None:
    """Only numbers are written differently: what dumps refuses, dumps_jsonb refuses too."""
    with pytest.raises((TypeError, ValueError)) as refused:
        json_codec.dumps(value)
    with pytest.raises(refused.type):
        json_codec.dumps_jsonb(value)


@pytest.mark.parametrize(
    "number", ["1e99999999999999999999", "-12e999999999999999999", "1e-99999999999999999999999"]
)
def test_numbers_decimal_cannot_hold_are_a_json_error(number: str) -> None:
    """An exponent beyond Decimal's range is a JsonError like any other unreadable text, not a
    decimal.InvalidOperation escaping to the caller."""
    with pytest.raises(json_codec.JsonError):
        json_codec.loads('{"n": ' + number + "}")
