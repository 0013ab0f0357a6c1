"""kafka-python's producer errors leave worker/kafka/ as ours, with the client's message (no
broker: a fake client stands in for KafkaProducer)."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from kafka.future import Future

from tests.strategies import example_document
from worker.errors import BrokerUnavailableError, FatalError
from worker.kafka import client as kafka_client
from worker.kafka.producers import open_producer
from worker.producer import ExecutionEventProducer
from worker.settings import KafkaSettings

SETTINGS = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:9", topic="t")


class _Answered(Future):  # type: ignore[misc]  # untyped base
    """A send's future the broker has answered: acknowledged, or failed with `error`."""

    def __init__(self, error: Exception | None) -> None:
        super().__init__()
        if error is None:
            self.success("metadata")
        else:
            self.failure(error)

    def get(self, timeout: float | None = None) -> Any:
        if self.failed():
            raise self.exception
        return self.value


class _Client:
    """Stands in for KafkaProducer: every send is answered with `error` (None: acknowledged)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.config: dict[str, Any] = {}

    def __call__(self, **config: Any) -> _Client:
        self.config = config
        return self

    def send(self, topic: str, **record: Any) -> _Answered:
        return _Answered(self.error)

    def flush(self, timeout: float) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


def fake_client(monkeypatch: pytest.MonkeyPatch, error: Exception | None = None) -> _Client:
    client = _Client(error)
    monkeypatch.setattr(kafka_client, "KafkaProducer", client)
    return client


def test_a_producer_gets_the_settings_connection_and_its_own_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The builder starts from kafka_config() (servers, security) and adds the caller's
    options over it."""
    client = fake_client(monkeypatch)
    open_producer(SETTINGS, "roi-test", acks="all")
    assert client.config == {**SETTINGS.kafka_config(), "client_id": "roi-test", "acks": "all"}


def test_a_producer_that_cannot_reach_kafka_is_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-python's error while bootstrapping becomes BrokerUnavailableError naming the
    servers."""

    def unreachable(**config: Any) -> None:
        raise KafkaConnectionError("no broker")

    monkeypatch.setattr(kafka_client, "KafkaProducer", unreachable)
    with pytest.raises(
        BrokerUnavailableError, match=r"^cannot reach Kafka at 127.0.0.1:9: KafkaConnectionError"
    ):
        open_producer(SETTINGS, "roi-test")


@pytest.mark.parametrize(
    ("error", "ours"),
    [
        (KafkaTimeoutError("Batch expired"), BrokerUnavailableError),
        (MessageSizeTooLargeError("too large"), FatalError),
    ],
)
def test_a_failed_delivery_says_whether_to_try_again(
    monkeypatch: pytest.MonkeyPatch, error: Exception, ours: type[Exception]
) -> None:
    """A retriable error is BrokerUnavailableError, another FatalError; both keep the client's
    message, from `error` and from `wait`."""
    fake_client(monkeypatch, error)
    delivery = open_producer(SETTINGS, "roi-test").send("t", b"{}")
    assert not delivery.acknowledged
    assert type(delivery.error) is ours
    assert str(delivery.error) == str(error)
    with pytest.raises(ours) as raised:
        delivery.wait(1)
    assert str(raised.value) == str(error)
    reported: list[Exception] = []
    delivery.on_failure(reported.append)
    assert [str(e) for e in reported] == [str(error)]


def test_an_acknowledged_delivery_has_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Acknowledged: no error, and wait returns."""
    fake_client(monkeypatch)
    delivery = open_producer(SETTINGS, "roi-test").send("t", b"{}", key=b"k")
    assert delivery.acknowledged
    assert delivery.error is None
    delivery.wait(1)


def test_the_producer_helper_reports_any_refusal_as_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ExecutionEventProducer answers every failure to send with BrokerUnavailableError (the
    API's 503), a record too large included, naming the event."""
    fake_client(monkeypatch, MessageSizeTooLargeError("too large"))
    document = example_document(event_id="00000001-0000-4000-8000-000000000000")
    producer = ExecutionEventProducer(SETTINGS)
    with pytest.raises(
        BrokerUnavailableError,
        match=r"^Kafka did not take event 00000001-.*: \[Error 10\] MessageSizeTooLargeError",
    ):
        producer.publish(document, wait=True)
