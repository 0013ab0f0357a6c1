"""Dead letters: invalid events go to the dead-letter topic with why and where they came from.

Each dead letter keeps the original key, value and headers, and adds `roi.error.reason` (a
stable code, see InvalidReason), `roi.error.message`, `roi.source.topic`,
`roi.source.partition`, `roi.source.offset` and `roi.source.timestamp` (milliseconds since the
epoch). Publishing waits for the broker's acknowledgement of every letter: only then may the
source offsets be committed. Delivery to the dead-letter topic is at least once: a crash
between the acknowledgement and the database commit publishes the letter again on
re-delivery; readers can tell repeats by their source headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from kafka import KafkaProducer
from kafka.errors import KafkaError

from worker.errors import BrokerUnavailableError

HEADER_PREFIXES: Final = ("roi.error.", "roi.source.")
MAX_MESSAGE_BYTES: Final = 4096  # of roi.error.message; field errors can be long

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Message:
    """A consumed message, as much of it as the pipeline and its dead letters need."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # milliseconds since the epoch
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: Message
    reason: str
    error: str

    def headers(self) -> Headers:
        """The original headers (minus any stale roi.error/roi.source ones), then ours."""
        source = self.message
        kept = [(k, v) for k, v in source.headers if not k.startswith(HEADER_PREFIXES)]
        error = self.error.encode("utf-8", "replace")
        if len(error) > MAX_MESSAGE_BYTES:
            error = error[: MAX_MESSAGE_BYTES - 3].decode("utf-8", "ignore").encode() + b"..."
        return [
            *kept,
            ("roi.error.reason", self.reason.encode()),
            ("roi.error.message", error),
            ("roi.source.topic", source.topic.encode()),
            ("roi.source.partition", str(source.partition).encode()),
            ("roi.source.offset", str(source.offset).encode()),
            ("roi.source.timestamp", str(source.timestamp).encode()),
        ]


class DeadLetterPublisher:
    """Publishes dead letters and waits until the broker has acknowledged all of them."""

    def __init__(self, producer: KafkaProducer, topic: str, *, timeout: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout = timeout

    @property
    def topic(self) -> str:
        return self._topic

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Raises BrokerUnavailableError unless every letter was acknowledged in time."""
        if not letters:
            return
        try:
            futures: list[Any] = [
                self._producer.send(
                    self._topic,
                    key=letter.message.key,
                    value=letter.message.value,
                    headers=letter.headers(),
                )
                for letter in letters
            ]
            self._producer.flush(timeout=self._timeout)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            raise BrokerUnavailableError(
                f"dead-letter topic {self._topic}: {type(exc).__name__}: {exc}"
            ) from exc
