"""publish_all's deadline, with a fake kafka-python producer and a fake clock (no broker)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.strategies import example_document
from worker import producer as producer_module
from worker.contract.event import ExecutionEvent
from worker.contract.validate import validate
from worker.errors import BrokerUnavailableError
from worker.kafka import client as kafka_client
from worker.settings import KafkaSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class SlowSends:
    """send() takes `send_seconds` of the fake clock, as when the send buffer is full."""

    def __init__(self, clock: FakeClock, send_seconds: float) -> None:
        self.clock = clock
        self.send_seconds = send_seconds
        self.sent = 0

    def __call__(self, **options: Any) -> SlowSends:
        del options
        return self

    def send(self, topic: str, key: bytes, value: bytes, headers: list[Any]) -> Any:
        del topic, key, value, headers
        self.clock.now += self.send_seconds
        self.sent += 1
        return SimpleNamespace(get=lambda timeout: None)


def events(count: int) -> list[ExecutionEvent]:
    return [
        validate(example_document(event_id=f"{n + 1:08x}-0000-4000-8000-000000000000"))
        for n in range(count)
    ]


def publisher(monkeypatch: pytest.MonkeyPatch, send_seconds: float) -> tuple[Any, SlowSends]:
    clock = FakeClock()
    fake = SlowSends(clock, send_seconds)
    monkeypatch.setattr(kafka_client, "KafkaProducer", fake)  # what worker.kafka builds
    monkeypatch.setattr(producer_module, "time", clock)
    settings = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:9", topic="t")
    return producer_module.ExecutionEventProducer(settings), fake


def test_publish_all_sends_every_event_within_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    producer, fake = publisher(monkeypatch, send_seconds=0.1)
    producer.publish_all(events(10), timeout=5)
    assert fake.sent == 10


def test_a_send_buffer_that_stays_full_ends_publish_all_at_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer, fake = publisher(monkeypatch, send_seconds=1.0)
    with pytest.raises(
        BrokerUnavailableError, match=r"took only 3 of the 10 event\(s\) within 2.5 s"
    ):
        producer.publish_all(events(10), timeout=2.5)
    assert fake.sent == 3
