"""POST bodies (worker.api.ingest): v1 events and seed 000's PatternExecution, told apart by
schema_version, and the Idempotency-Key header that makes a seed body's retries one event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.strategies import example_document
from worker.api.ingest import SEED_EVENT_NAMESPACE, InvalidBodyError, parse_events, seed_event_id
from worker.contract import json_codec

NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
# Seed 000's PatternExecution as its dataclass serialises: id and executed_at null, floats.
SEED_BODY = b"""{
    "id": null,
    "pattern_id": "test-retry-automation",
    "workflow_id": 1842,
    "execution_time_seconds": 12.5,
    "estimated_time_seconds": 300.0,
    "actual_cost": 0.42,
    "estimated_cost": 25.0,
    "success": false,
    "error_message": "flaky",
    "executed_at": null
}"""


def seed(**changes: Any) -> bytes:
    document: dict[str, Any] = json_codec.loads(SEED_BODY.decode())
    document.update(changes)
    return json_codec.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def problems(body: bytes, key: str | None = None) -> dict[tuple[str | int, ...], str]:
    with pytest.raises(InvalidBodyError) as caught:
        parse_events(body, key, now=NOW)
    return {tuple(p.loc): p.msg for p in caught.value.problems}


def test_a_seed_body_becomes_a_v1_event() -> None:
    """Exact amounts (no float on the way), an int workflow_id as text, executed_at now (UTC)
    and a fresh uuid4 without an Idempotency-Key."""
    [event] = parse_events(SEED_BODY, now=NOW)
    assert event.pattern_id == "test-retry-automation"
    assert event.workflow_id == "1842"
    assert (event.execution_time_seconds, event.actual_cost) == (Decimal("12.5"), Decimal("0.42"))
    assert (event.success, event.error_message) == (False, "flaky")
    assert event.executed_at == NOW
    assert event.event_id.version == 4
    assert event.unknown_fields == {}
    [again] = parse_events(SEED_BODY, now=NOW)
    assert again.event_id != event.event_id  # without a key a retry is a new event


def test_an_idempotency_key_makes_every_retry_the_same_event() -> None:
    """event_id = uuid5(namespace, pattern_id + newline + key): equal for equal keys, distinct
    per pattern and per key; the given executed_at is kept."""
    body = seed(executed_at="2026-05-20T11:00:00Z")
    [first] = parse_events(body, "retry-1", now=NOW)
    [second] = parse_events(body, "retry-1", now=datetime.now(UTC))
    assert first == second
    assert first.event_id == uuid.uuid5(SEED_EVENT_NAMESPACE, "test-retry-automation\nretry-1")
    assert first.event_id == seed_event_id("test-retry-automation", "retry-1")
    [other_key] = parse_events(body, "retry-2", now=NOW)
    [other_pattern] = parse_events(
        seed(executed_at="2026-05-20T11:00:00Z", pattern_id="x"), "retry-1"
    )
    assert len({first.event_id, other_key.event_id, other_pattern.event_id}) == 3


def test_a_seed_body_with_a_key_needs_executed_at() -> None:
    """A default executed_at differs on every attempt, so a retry would conflict: 422."""
    assert problems(SEED_BODY, "retry-1") == {
        ("body", "executed_at"): "is required with an Idempotency-Key: a retry must be the "
        "same event, and the default (now) differs on every attempt"
    }


def test_seed_bodies_with_v1_or_unknown_fields_or_an_id_are_refused_with_every_problem() -> None:
    """event_id without schema_version says how to send a v1 event; an unknown field, a
    non-null id and the contract's own problems all come in one answer."""
    found = problems(
        seed(event_id=str(uuid.uuid4()), colour="red", id=7, actual_cost="-1", success=...)
    )
    assert set(found) == {
        ("body", "event_id"),
        ("body", "colour"),
        ("body", "id"),
        ("body", "actual_cost"),
        ("body", "success"),
    }
    assert 'add "schema_version": 1 to send a v1 event' in found[("body", "event_id")]
    assert found[("body", "colour")] == "is not a field of seed 000's PatternExecution body"
    assert found[("body", "id")].startswith("must be absent or null")


def test_a_workflow_id_beyond_64_bits_is_refused() -> None:
    """The OpenAPI document states 64-bit integers: the server refuses what it does not state."""
    assert problems(seed(workflow_id=2**63)) == {
        ("body", "workflow_id"): "as an integer must be within 64 bits"
    }


@pytest.mark.parametrize("written", ["1842.0", "1.842e3", "1842"])
def test_an_integral_workflow_id_is_its_integer_however_written(written: str) -> None:
    """JSON Schema's integers include 1842.0: stored as "1842" like 1842."""
    body = SEED_BODY.replace(b'"workflow_id": 1842', f'"workflow_id": {written}'.encode())
    [event] = parse_events(body, now=NOW)
    assert event.workflow_id == "1842"


def test_v1_events_are_read_as_before_and_take_only_their_own_event_id_as_key() -> None:
    """schema_version makes it v1; a key equal to its event_id is fine, any other is 422, and
    an array takes no key."""
    document = example_document(executed_at="2026-05-20T11:00:00Z")
    body = json_codec.dumps(document).encode()
    [event] = parse_events(body)
    assert str(event.event_id) == document["event_id"]
    assert parse_events(body, document["event_id"].upper()) == [event]
    assert set(problems(body, "retry-1")) == {("header", "Idempotency-Key")}
    array = json_codec.dumps([document]).encode()
    assert "names one event" in problems(array, document["event_id"])[("header", "Idempotency-Key")]


@pytest.mark.parametrize("key", ["", " padded", "tab\tinside", "é", "x" * 256])
def test_a_malformed_idempotency_key_is_refused(key: str) -> None:
    """1 to 255 printable ASCII characters, no space at either end."""
    assert set(problems(SEED_BODY, key)) == {("header", "Idempotency-Key")}


def test_the_documented_namespace_is_the_one_in_use() -> None:
    """docs/api.md states the uuid5 namespace so that clients can predict their event_ids."""
    docs = (Path(__file__).parents[3] / "docs" / "api.md").read_text(encoding="utf-8")
    assert f"uuid5({SEED_EVENT_NAMESPACE}, pattern_id" in docs
