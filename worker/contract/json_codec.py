"""Strict JSON for events: numbers are Decimals, never binary floats.

`loads` rejects what RFC 8259 does not define (NaN, Infinity), duplicate keys (RFC 7493),
nesting deeper than MAX_DEPTH and numbers no Decimal can hold, so a value means one thing and
costs bounded work. `dumps` writes Decimals as JSON numbers with every digit kept, and refuses
strings PostgreSQL cannot store; `dumps_jsonb` writes the same values for a jsonb column.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

# Nested arrays/objects: deeper is never a real event, and recursion must stay bounded.
MAX_DEPTH = 64

# jsonb keeps a number as a PostgreSQL numeric, which holds at most 16,383 digits after the
# point and 131,072 before it, and prints it in full, never with an exponent: the 8 bytes of
# 1e131071 would come back as 131,072 digits, and an event's 16 KiB of unknown fields as a
# quarter of a gigabyte for every reader and every dump. A number whose exponent (digits read
# as an integer: 12.5e3 is 125e2) stays within this bound prints in about this many characters
# more than its digits; every IEEE 754 double does (5e-324 has exponent -324).
JSONB_MAX_EXPONENT: Final = 1000
_NUMERIC_MAX_INTEGER_DIGITS: Final = 131072  # PostgreSQL numeric, before the decimal point


class JsonError(ValueError):
    """The text is not the strict JSON this module accepts."""


def _reject_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)  # in C: one object per event, so the usual case must be cheap
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonError(f"duplicate key {key!r}")
            seen.add(key)
    return obj


# One decoder for every call: json.loads with options builds a new one each time (~1 us).
_DECODER: Final = json.JSONDecoder(
    parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_unique_keys
)


def loads(text: str) -> Any:
    """Parses JSON text; non-integer numbers become exact Decimals.

    Raises JsonError for malformed JSON, NaN/Infinity, duplicate keys, integers with more than
    4300 digits, exponents beyond Decimal's range (about 10**18) and nesting deeper than the
    interpreter's recursion limit.
    """
    try:
        if text.startswith("\ufeff"):  # as json.loads says; the decoder alone would not
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except JsonError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonError(f"{exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise JsonError("nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal beyond the interpreter's digit limit
        raise JsonError(str(exc)) from None
    except ArithmeticError:  # decimal.InvalidOperation: only an exponent out of range gets here
        raise JsonError("a number is out of range: its exponent is beyond about ±10**18") from None
    # Nesting needs an opening bracket per level: most texts cannot be too deep, and counting
    # is far cheaper than walking the parsed value.
    if text.count("{") + text.count("[") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise JsonError(f"nested deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of arrays and objects, computed without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def unstorable(text: str) -> str | None:
    """What in `text` PostgreSQL cannot store (NUL, unpaired surrogates), or None."""
    if "\x00" in text:
        return "the NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "an unpaired UTF-16 surrogate"
    return None


def dumps(value: Any) -> str:
    """Serialises JSON values (dict, list, str, int, Decimal, bool, None) compactly.

    Decimals become JSON numbers with their exact digits: str() of a finite Decimal is always a
    valid JSON number. Raises ValueError for NaN/Infinity, unstorable strings and nesting deeper
    than MAX_DEPTH; TypeError for floats and other types.
    """
    parts: list[str] = []
    _write(value, parts, 1, _scalar)
    return "".join(parts)


def dumps_jsonb(value: Any) -> str:
    """Like `dumps`, for a PostgreSQL jsonb column: every value `dumps` takes is storable.

    A number is written as a JSON number when its exponent is within +-JSONB_MAX_EXPONENT
    (and PostgreSQL's numeric holds it), otherwise as a JSON string of the Decimal's text, the
    same digits and exponent (1e-99999 becomes "1E-99999"). Raises what `dumps` raises.
    """
    parts: list[str] = []
    _write(value, parts, 1, _jsonb_scalar)
    return "".join(parts)


def _write(value: Any, out: list[str], depth: int, scalar: Callable[[Any], str]) -> None:
    if isinstance(value, dict | list | tuple) and depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            out.append(("," if index else "") + _string(key) + ":")
            _write(item, out, depth + 1, scalar)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out, depth + 1, scalar)
        out.append("]")
    else:
        out.append(scalar(value))


def _string(text: str) -> str:
    problem = unstorable(text)
    if problem:
        raise ValueError(f"a string contains {problem}")
    return json.dumps(text, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value (floats are refused too)")


def _jsonb_scalar(value: Any) -> str:
    text = _scalar(value)  # refuses what dumps refuses, first
    if isinstance(value, bool):
        return text
    if isinstance(value, int):
        # Exponent 0; the digits are bounded by the interpreter's int-to-str limit (4300 by
        # default) unless a program lifted it.
        digits = len(text) - (value < 0)
        return text if digits <= _NUMERIC_MAX_INTEGER_DIGITS else '"' + text + '"'
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        if (
            isinstance(exponent, int)  # finite: _scalar refused the others
            and -JSONB_MAX_EXPONENT <= exponent <= JSONB_MAX_EXPONENT
            and (not value or value.adjusted() < _NUMERIC_MAX_INTEGER_DIGITS)
        ):
            return text
        return '"' + text + '"'  # digits, sign, "." and "E" only: nothing to escape
    return text
