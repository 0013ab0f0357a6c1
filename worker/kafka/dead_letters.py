"""The dead-letter topic's producer: the DeadLetterSink (worker.types) of `run` and `replay`.

`open_dead_letters` is the one way either makes it, so the producer's settings, and the
"send every letter, then wait for the broker's acknowledgement of each" below, exist once.
What a letter holds is worker.types.DeadLetter's business.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

from ..errors import BrokerUnavailableError, FatalError
from ..settings import KafkaSettings
from ..types import DeadLetter, DeadLetterHeader
from .client import new_producer

log = logging.getLogger(__name__)

HEADROOM_BYTES: Final = 16384  # for our headers and the record overhead
CLOSE_TIMEOUT_SECONDS: Final = 2.0
RECONNECT_BACKOFF_MAX_MS: Final = 1000  # back within a second of the broker's return
CONNECT_TIMEOUT_MS: Final = 5000  # to bootstrap a new producer; the store retries anyway


def open_dead_letters(
    settings: KafkaSettings, topic: str, *, client_id: str, timeout: float
) -> DeadLetterPublisher:
    """A publisher to `topic` whose producer is made when first needed. `timeout`: seconds a
    publish waits for the acknowledgements (the producer gives up on a letter after three
    times that)."""

    def make_producer() -> KafkaProducer:
        return new_producer(
            settings,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_block_ms=CONNECT_TIMEOUT_MS,
            request_timeout_ms=int(timeout * 1000),
            delivery_timeout_ms=int(timeout * 1000 * 3),
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            bootstrap_timeout_ms=CONNECT_TIMEOUT_MS,
        )

    return DeadLetterPublisher(make_producer, topic, timeout=timeout)


class DeadLetterPublisher:
    """Publishes dead letters and waits until the broker has acknowledged all of them
    (a DeadLetterSink).

    Owns its producer, made by `make_producer` when first needed. A producer whose send timed
    out is replaced at the next publish (after a broker was killed, kafka-python's producer has
    been seen to time out for good while a new one works at once); the old one is closed on a
    thread of its own, once its last records have expired.

    Thread-safety: one thread publishes (the store thread); `reset` may come from any other,
    and only asks the publishing thread to replace the producer.
    """

    def __init__(
        self, make_producer: Callable[[], KafkaProducer], topic: str, *, timeout: float
    ) -> None:
        self._make_producer = make_producer
        self._producer: KafkaProducer | None = None
        self._reset = threading.Event()
        self._topic = topic
        self._timeout = timeout

    @property
    def topic(self) -> str:
        return self._topic

    def connect(self) -> None:
        """Makes the producer now unless there is one: so that a publish inside a database
        transaction does not wait for a new producer's bootstrap. Raises
        BrokerUnavailableError."""
        self._current()

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Returns once every letter is acknowledged.

        Raises BrokerUnavailableError when the broker did not acknowledge in time (retry
        later), FatalError when it never will (e.g. no permission to write the topic).
        """
        if not letters:
            return
        producer = self._current()
        try:
            sent = [(letter, self._send(producer, letter, drop_value=False)) for letter in letters]
            producer.flush(timeout=self._timeout)
            too_large = [letter for letter, future in sent if _failed_for_size(future)]
            if too_large:
                resent = [self._send(producer, letter, drop_value=True) for letter in too_large]
                producer.flush(timeout=self._timeout)
                sent = [(letter, f) for letter, f in sent if letter not in too_large]
                sent += zip(too_large, resent, strict=True)
            for _, future in sent:
                future.get(timeout=0)
        except KafkaError as exc:
            where = f"dead-letter topic {self._topic}"
            if exc.retriable:
                self._discard()
                raise BrokerUnavailableError(f"{where}: {type(exc).__name__}: {exc}") from exc
            raise FatalError(f"{where}: {exc}; fix the topic or the worker's rights") from exc

    def reset(self) -> None:
        """Asks for a new producer at the next publish (from any thread)."""
        self._reset.set()

    def close(self) -> None:
        """Closes the producer, waiting at most a moment for what it still holds. Only once
        nothing publishes any more."""
        producer, self._producer = self._producer, None
        if producer is not None:
            _close(producer, CLOSE_TIMEOUT_SECONDS)

    def _current(self) -> KafkaProducer:
        if self._reset.is_set():
            self._reset.clear()
            self._discard()
        if self._producer is None:
            try:
                self._producer = self._make_producer()
            except BrokerUnavailableError as exc:  # new_producer's, naming the servers
                raise BrokerUnavailableError(f"dead-letter topic {self._topic}: {exc}") from exc
        return self._producer

    def _discard(self) -> None:
        """Drops the producer. kafka-python's close() first waits for the records it holds,
        and raises (closing nothing) if they outlast its timeout: so it is given more than
        their delivery timeout, on a thread that nothing waits for."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        timeout = producer.config.get("delivery_timeout_ms", 120_000) / 1000 + CLOSE_TIMEOUT_SECONDS
        threading.Thread(
            target=_close, args=(producer, timeout), name="roi-dead-letters-close", daemon=True
        ).start()

    def _send(self, producer: KafkaProducer, letter: DeadLetter, *, drop_value: bool) -> Any:
        """Sends one letter; a value too large to forward is replaced by a header saying so."""
        value = letter.message.value
        headers = letter.headers()
        if drop_value or _too_large(value, producer):
            headers.append((DeadLetterHeader.VALUE_DROPPED_BYTES, str(len(value or b"")).encode()))
            value = b""
        if letter.message.key is None and value is None:
            value = b""  # the client refuses a record with neither key nor value
        try:
            return producer.send(self._topic, key=letter.message.key, value=value, headers=headers)
        except MessageSizeTooLargeError:
            if drop_value:
                raise
            return self._send(producer, letter, drop_value=True)


def _too_large(value: bytes | None, producer: KafkaProducer) -> bool:
    limit: int = producer.config["max_request_size"]
    return value is not None and len(value) + HEADROOM_BYTES > limit


def _failed_for_size(future: Any) -> bool:
    return bool(
        future.is_done
        and future.failed()
        and isinstance(future.exception, MessageSizeTooLargeError | RecordListTooLargeError)
    )


def _close(producer: KafkaProducer, timeout: float) -> None:
    try:
        producer.close(timeout=timeout)
    except Exception as exc:  # a broken producer may fail to close, too
        log.warning("closing the dead-letter producer failed: %s", exc)
