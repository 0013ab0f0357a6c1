"""worker.consume.ratings_publisher: what is marked sent after the broker answers, without
services (the database reads and the producer are fakes; the integration tests use real ones)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from worker.consume.ratings_publisher import RatingsPublisher
from worker.db import ratings
from worker.errors import BrokerUnavailableError
from worker.kafka.producers import Producer
from worker.settings import load_settings

AT = datetime(2026, 12, 1, tzinfo=UTC)


def row(pattern_id: str, sequence: int) -> ratings.TransitionRow:
    old = None if sequence == 1 else "good"
    new = "failed" if sequence % 2 == 0 else "good"
    return ratings.TransitionRow(
        pattern_id, sequence, old, None, new, None, 10, 9, Decimal("1"), Decimal("2"), AT
    )


class FakeDelivery:
    def __init__(self, acknowledged: bool) -> None:
        self.acknowledged = acknowledged
        self.error = None if acknowledged else BrokerUnavailableError("NotEnoughReplicas")


class FakeProducer:
    """Acknowledges every record but those of `failing` (pattern_id, sequence)."""

    def __init__(self, failing: set[tuple[str, int]]) -> None:
        self.failing = failing
        self.sent: list[tuple[bytes | None, dict[str, Any]]] = []

    def send(self, topic: str, value: bytes, *, key: bytes | None = None) -> FakeDelivery:
        del topic
        event = json.loads(value)
        self.sent.append((key, event))
        return FakeDelivery((event["pattern_id"], event["sequence"]) not in self.failing)

    def flush(self, timeout: float) -> None:
        del timeout

    def close(self, timeout: float) -> None:
        del timeout


@pytest.fixture
def marked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The keys mark_sent is given; unsent() returns P #1..#3 and Q #1."""
    found: list[tuple[str, int]] = []
    rows = [row("P", 1), row("P", 2), row("P", 3), row("Q", 1)]
    monkeypatch.setattr(ratings, "unsent", lambda conn, limit: rows[:limit])
    monkeypatch.setattr(ratings, "mark_sent", lambda conn, keys: found.extend(keys))
    return found


def publisher(producer: FakeProducer, registry: CollectorRegistry) -> RatingsPublisher:
    settings = load_settings(database_url="postgresql://roi@localhost/roi")
    made = RatingsPublisher(settings, threading.Event(), registry=registry)
    made._producer = cast(Producer, producer)  # connected, topic checked
    made._topic_checked = True
    return made


def test_acknowledged_transitions_are_marked_sent(marked: list[tuple[str, int]]) -> None:
    """Every record keyed by its pattern, in sequence order; all acknowledged, all marked."""
    registry = CollectorRegistry()
    producer = FakeProducer(set())
    assert publisher(producer, registry).publish_once(cast(Any, None)) == 4
    assert [(key, e["sequence"]) for key, e in producer.sent] == [
        (b"P", 1),
        (b"P", 2),
        (b"P", 3),
        (b"Q", 1),
    ]
    assert marked == [("P", 1), ("P", 2), ("P", 3), ("Q", 1)]
    assert registry.get_sample_value("roi_rating_transitions_published_total") == 4


def test_only_the_acknowledged_prefix_of_a_pattern_is_marked(
    marked: list[tuple[str, int]],
) -> None:
    """P #2 not acknowledged: P #1 and Q #1 are marked, P #2 and P #3 (acknowledged or not)
    wait for the next try, so P's events are sent again in order, never with a gap."""
    registry = CollectorRegistry()
    producer = FakeProducer({("P", 2)})
    with pytest.raises(BrokerUnavailableError, match="did not acknowledge 2"):
        publisher(producer, registry).publish_once(cast(Any, None))
    assert marked == [("P", 1), ("Q", 1)]
    assert registry.get_sample_value("roi_rating_transitions_published_total") == 2


def test_nothing_unsent_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty outbox neither connects a producer nor marks anything."""
    monkeypatch.setattr(ratings, "unsent", lambda conn, limit: [])
    settings = load_settings(database_url="postgresql://roi@localhost/roi")
    made = RatingsPublisher(settings, threading.Event(), registry=CollectorRegistry())
    assert made.publish_once(cast(Any, None)) == 0
    assert made._producer is None
