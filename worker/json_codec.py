"""Strict JSON for events: numbers are Decimals, never binary floats.

`loads` rejects what RFC 8259 does not define (NaN, Infinity) and duplicate keys (RFC 7493), so
a value means one thing. `dumps` writes Decimals as JSON numbers with every digit kept.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


class JsonError(ValueError):
    """The text is not the strict JSON this module accepts."""


def _reject_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise JsonError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def loads(text: str) -> Any:
    """Parses JSON text; non-integer numbers become exact Decimals.

    Raises JsonError for malformed JSON, NaN/Infinity, duplicate keys, integers with more than
    4300 digits and nesting deeper than the interpreter's recursion limit.
    """
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except JsonError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise JsonError("nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal beyond the interpreter's digit limit
        raise JsonError(str(exc)) from None


def dumps(value: Any) -> str:
    """Serialises JSON values (dict, list, str, int, Decimal, bool, None) compactly.

    Decimals become JSON numbers with their exact digits: str() of a finite Decimal is always a
    valid JSON number. Raises ValueError for NaN/Infinity, TypeError for floats and other types.
    """
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            out.append(("," if index else "") + json.dumps(key, ensure_ascii=False) + ":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        out.append(_scalar(value))


def _scalar(value: Any) -> str:
    if value is None or isinstance(value, bool | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value (floats are refused too)")
