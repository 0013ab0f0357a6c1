"""Reading a bounded range of a topic: from start offsets to end offsets fixed in advance.

Replay and the dead-letter tools read this way, so they always end, whatever keeps arriving
while they run. The consumer is assigned its partitions directly (no consumer group), so
reading never disturbs a group's members or its committed offsets. It reads committed events
only, and a record the client cannot decode comes out as a Message with `undecodable` set
(worker.kafka.client), so a range always ends.

Callers hold a `RangeConsumer` and see partitions as numbers and offsets as ints; every Kafka
failure comes out as BrokerUnavailableError, a missing topic as ConfigurationError.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from ..errors import BrokerUnavailableError, ConfigurationError
from ..settings import KafkaSettings
from ..types import Message
from .client import KAFKA_TIMEOUT_MS, RecordReader, new_consumer

POLL_MS: Final = 500
IDLE_TIMEOUT_SECONDS: Final = 60.0  # no record and no progress for this long: the broker is gone


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets [start, end) of one partition."""

    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


class RangeConsumer:
    """A consumer without a group, for the functions of this module; close it when done (or
    use it as a context manager)."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_consumer(settings: KafkaSettings, client_id: str, **config: Any) -> RangeConsumer:
    """A consumer without a group (partitions are assigned, offsets never committed);
    `config` takes kafka-python's consumer options (fetch sizes, say).

    Raises BrokerUnavailableError when Kafka cannot be reached.
    """
    return RangeConsumer(
        new_consumer(
            settings,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=KAFKA_TIMEOUT_MS + 5000,
            **config,
        )
    )


def partitions_of(consumer: RangeConsumer, topic: str) -> list[int]:
    """Every partition of `topic`; raises ConfigurationError when the topic does not exist."""
    try:
        ids = consumer._consumer.partitions_for_topic(topic)
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka: {type(exc).__name__}: {exc}") from exc
    if not ids:
        raise ConfigurationError(f"topic {topic!r} does not exist")
    return sorted(ids)


def bounds(consumer: RangeConsumer, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (first offset still stored, end offset), as of now."""
    partitions = [TopicPartition(topic, p) for p in partitions_of(consumer, topic)]
    try:
        first = consumer._consumer.beginning_offsets(partitions, timeout_ms=KAFKA_TIMEOUT_MS)
        end = consumer._consumer.end_offsets(partitions, timeout_ms=KAFKA_TIMEOUT_MS)
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot read the offsets of {topic}: {exc}") from exc
    return {tp.partition: (first[tp], end[tp]) for tp in partitions}


def offsets_at(
    consumer: RangeConsumer, topic: str, moment: datetime, ends: Mapping[int, int]
) -> dict[int, int]:
    """partition -> the first offset whose timestamp is at or after `moment` (else the end)."""
    millis = int(moment.timestamp() * 1000)
    partitions = [TopicPartition(topic, p) for p in sorted(ends)]
    try:
        found = consumer._consumer.offsets_for_times(dict.fromkeys(partitions, millis))
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot look up offsets by time in {topic}: {exc}") from exc
    return {
        tp.partition: ends[tp.partition] if found.get(tp) is None else found[tp].offset
        for tp in partitions
    }


class RangeReader:
    """Yields the messages of the ranges in batches, then stops: every partition done.

    A partition is done once the consumer's position reaches its end (records deleted by
    retention or compaction are skipped, not waited for). Raises BrokerUnavailableError when
    Kafka fails, or nothing arrives and no position moves for IDLE_TIMEOUT_SECONDS.
    """

    def __init__(self, consumer: RangeConsumer, topic: str, ranges: Sequence[PartitionRange]):
        client = self._consumer = consumer._consumer
        self._reader = RecordReader(client)
        self._ranges = {r.partition: r for r in ranges}
        self._topic = topic
        self._done: set[int] = {r.partition for r in ranges if r.size == 0}
        active = [TopicPartition(topic, r.partition) for r in ranges if r.size > 0]
        client.assign(active)
        for tp in active:
            client.seek(tp, self._ranges[tp.partition].start)

    @property
    def done(self) -> set[int]:
        """The partitions read to their end offset."""
        return set(self._done)

    def batches(
        self, max_records: int, stop: threading.Event | None = None
    ) -> Iterator[list[Message]]:
        idle_since = time.monotonic()
        last_positions: dict[int, int] = {}
        while len(self._done) < len(self._ranges) and not (stop and stop.is_set()):
            try:  # the position lookups of _check_ends may fail as a poll does
                polled = self._reader.poll(timeout_ms=POLL_MS, max_records=max_records)
                positions = self._check_ends()
            except KafkaError as exc:
                raise BrokerUnavailableError(f"reading {self._topic}: {exc}") from exc
            batch = [m for m in polled if m.offset < self._ranges[m.partition].end]
            if batch or positions != last_positions:
                idle_since = time.monotonic()
                last_positions = positions
            elif time.monotonic() - idle_since > IDLE_TIMEOUT_SECONDS:
                raise BrokerUnavailableError(
                    f"no progress reading {self._topic} for {IDLE_TIMEOUT_SECONDS:g} s "
                    f"(partitions not done: {sorted(set(self._ranges) - self._done)})"
                )
            if batch:
                yield batch

    def _check_ends(self) -> dict[int, int]:
        positions: dict[int, int] = {}
        finished = []
        for tp in self._consumer.assignment():
            position = self._consumer.position(tp)
            positions[tp.partition] = position
            if position >= self._ranges[tp.partition].end:
                self._done.add(tp.partition)
                finished.append(tp)
        if finished:
            self._consumer.pause(*finished)
        return positions
