"""Strict JSON: exact numbers in both directions, nothing JSON does not define."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given

from tests.strategies import json_values
from worker import json_codec


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
