"""Hypothesis strategies for event contract v1: valid wire documents and JSON values."""

from __future__ import annotations

import string
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from worker.event import MAX_SECONDS, MAX_USD, PATTERN_ID_RE, ExecutionEvent

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
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
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
