"""Publishing to Kafka without kafka-python's types: `Producer` sends records, `Delivery` tells
what became of one.

Every failure comes out as one of our errors with kafka-python's message
(worker.kafka.client.our_error): BrokerUnavailableError when trying again may help,
FatalError when Kafka says it cannot (a record too large, a topic not authorised). Callers
that treat both alike catch both.

`send` may block while the client's buffer is full or the topic's metadata is unknown (up to
the producer's max_block_ms); `flush` and `Delivery.wait` block up to the timeout given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from ..errors import BrokerUnavailableError, FatalError
from ..settings import KafkaSettings
from .client import new_producer, our_error

Headers = Sequence[tuple[str, bytes]]


def open_producer(settings: KafkaSettings, client_id: str, **config: Any) -> Producer:
    """A producer with the settings' connection, named `client_id`; `config` takes
    kafka-python's producer options (acks, enable_idempotence, linger_ms, max_block_ms, ...).
    Raises BrokerUnavailableError when Kafka cannot be reached."""
    return Producer(new_producer(settings, client_id=client_id, **config))


class Delivery:
    """The fate of one sent record: pending, acknowledged, or failed with one of our errors."""

    __slots__ = ("_future",)

    def __init__(self, future: Any) -> None:
        self._future = future

    def wait(self, timeout: float) -> None:
        """Blocks until the broker acknowledged the record; raises BrokerUnavailableError or
        FatalError if it did not within `timeout` seconds."""
        try:
            self._future.get(timeout=timeout)
        except KafkaError as exc:
            raise our_error(exc) from exc

    @property
    def acknowledged(self) -> bool:
        """Done, and taken by the broker (never blocks)."""
        return bool(self._future.is_done and self._future.succeeded())

    @property
    def error(self) -> BrokerUnavailableError | FatalError | None:
        """Why the broker did not take it, once that is known (never blocks)."""
        if not (self._future.is_done and self._future.failed()):
            return None
        return our_error(self._future.exception)

    def on_failure(self, report: Callable[[BrokerUnavailableError | FatalError], None]) -> None:
        """Calls `report` (on the client's I/O thread) with the error if the send fails."""
        self._future.add_errback(lambda exc: report(our_error(exc)))


class Producer:
    """A kafka-python producer behind our types; thread-safe, as the client is."""

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer

    def send(
        self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = ()
    ) -> Delivery:
        """Queues one record; raises BrokerUnavailableError or FatalError when the client
        refuses it (no metadata within max_block_ms, a record over max_request_size)."""
        try:
            future = self._producer.send(topic, key=key, value=value, headers=list(headers))
        except KafkaError as exc:
            raise our_error(exc) from exc
        return Delivery(future)

    def flush(self, timeout: float) -> None:
        """Blocks until every queued record is sent and answered, or `timeout` seconds
        (BrokerUnavailableError). The answers themselves are in each Delivery."""
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as exc:
            raise our_error(exc) from exc

    def close(self, timeout: float) -> None:
        """Sends what is queued (up to `timeout` seconds) and closes the connections."""
        self._producer.close(timeout=timeout)
