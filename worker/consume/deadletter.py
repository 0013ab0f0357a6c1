"""Dead letters: invalid events go to the dead-letter topic with why and where they came from.

Each dead letter keeps the original key, value and headers, and adds `roi.error.reason` (a
stable code, see InvalidReason), `roi.error.message`, `roi.source.topic`,
`roi.source.partition`, `roi.source.offset` and `roi.source.timestamp` (milliseconds since the
epoch; left out when unknown). Publishing waits for the broker's acknowledgement of every
letter: only then may the source offsets be committed. Delivery to the dead-letter topic is at
least once: a crash between the acknowledgement and the database commit publishes the letter
again on re-delivery; readers can tell repeats by their source headers. A value too large to forward
with the headers added is dropped and `roi.error.value_dropped_bytes` gives its size; the source
headers still say where to find the original.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

from worker.errors import BrokerUnavailableError, FatalError
from worker.types import ERROR_PREFIX, SOURCE_PREFIX, DeadLetterHeader, Message

log = logging.getLogger(__name__)

HEADER_PREFIXES: Final = (ERROR_PREFIX, SOURCE_PREFIX)
MAX_MESSAGE_BYTES: Final = 4096  # of roi.error.message; field errors can be long
HEADROOM_BYTES: Final = 16384  # for our headers and the record overhead
CLOSE_TIMEOUT_SECONDS: Final = 2.0

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: Message
    reason: str
    error: str
    fields: str = ""  # "field:rule,..." for contract violations

    def headers(self) -> Headers:
        """The original headers (minus any stale roi.error/roi.source ones), then ours."""
        source = self.message
        kept = [
            (k, v if v is not None else b"")  # Kafka allows null header values; the client not
            for k, v in source.headers
            if not k.startswith(HEADER_PREFIXES)
        ]
        error = self.error.encode("utf-8", "replace")
        if len(error) > MAX_MESSAGE_BYTES:
            error = error[: MAX_MESSAGE_BYTES - 3].decode("utf-8", "ignore").encode() + b"..."
        return [
            *kept,
            (DeadLetterHeader.REASON, self.reason.encode()),
            (DeadLetterHeader.MESSAGE, error),
            *([(DeadLetterHeader.FIELDS, self.fields.encode())] if self.fields else []),
            (DeadLetterHeader.SOURCE_TOPIC, source.topic.encode()),
            (DeadLetterHeader.SOURCE_PARTITION, str(source.partition).encode()),
            (DeadLetterHeader.SOURCE_OFFSET, str(source.offset).encode()),
            # Unknown (-1) for a record the client could not decode.
            *(
                [(DeadLetterHeader.SOURCE_TIMESTAMP, str(source.timestamp).encode())]
                if source.timestamp >= 0
                else []
            ),
        ]


class DeadLetterPublisher:
    """Publishes dead letters and waits until the broker has acknowledged all of them.

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
            except KafkaError as exc:
                raise BrokerUnavailableError(
                    f"dead-letter topic {self._topic}: {type(exc).__name__}: {exc}"
                ) from exc
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
