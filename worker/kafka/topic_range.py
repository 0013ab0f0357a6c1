"""Reading a bounded range of a topic: from start offsets to end offsets fixed in advance.

Replay and the dead-letter tools read this way, so they always end, whatever keeps arriving
while they run. The consumer is assigned its partitions directly (no consumer group), so
reading never disturbs a group's members or its committed offsets. It reads committed events
only, and a record the client cannot decode comes out as a Message with `undecodable` set
(worker.kafka.client), so a range always ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from worker.errors import BrokerUnavailableError, ConfigurationError
from worker.kafka.client import RecordReader, new_consumer
from worker.settings import KafkaSettings
from worker.types import Message

KAFKA_TIMEOUT_MS: Final = 15000
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


def open_consumer(settings: KafkaSettings, client_id: str, **config: Any) -> KafkaConsumer:
    """A consumer without a group (partitions are assigned, offsets never committed).

    Raises BrokerUnavailableError when Kafka cannot be reached.
    """
    try:
        return new_consumer(
            settings,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=KAFKA_TIMEOUT_MS + 5000,
            **config,
        )
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc


def partitions_of(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`; raises ConfigurationError when the topic does not exist."""
    ids = consumer.partitions_for_topic(topic)
    if not ids:
        raise ConfigurationError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, p) for p in sorted(ids)]


def bounds(consumer: KafkaConsumer, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (first offset still stored, end offset), as of now."""
    partitions = partitions_of(consumer, topic)
    try:
        first = consumer.beginning_offsets(partitions, timeout_ms=KAFKA_TIMEOUT_MS)
        end = consumer.end_offsets(partitions, timeout_ms=KAFKA_TIMEOUT_MS)
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot read the offsets of {topic}: {exc}") from exc
    return {tp.partition: (first[tp], end[tp]) for tp in partitions}


def offsets_at(
    consumer: KafkaConsumer, topic: str, moment: datetime, ends: Mapping[int, int]
) -> dict[int, int]:
    """partition -> the first offset whose timestamp is at or after `moment` (else the end)."""
    millis = int(moment.timestamp() * 1000)
    partitions = [TopicPartition(topic, p) for p in sorted(ends)]
    try:
        found = consumer.offsets_for_times(dict.fromkeys(partitions, millis))
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
    nothing arrives and no position moves for IDLE_TIMEOUT_SECONDS.
    """

    def __init__(self, consumer: KafkaConsumer, topic: str, ranges: Sequence[PartitionRange]):
        self._consumer = consumer
        self._reader = RecordReader(consumer)
        self._ranges = {r.partition: r for r in ranges}
        self._topic = topic
        self._done: set[int] = {r.partition for r in ranges if r.size == 0}
        active = [TopicPartition(topic, r.partition) for r in ranges if r.size > 0]
        consumer.assign(active)
        for tp in active:
            consumer.seek(tp, self._ranges[tp.partition].start)

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
            try:
                polled = self._reader.poll(timeout_ms=POLL_MS, max_records=max_records)
            except KafkaError as exc:
                raise BrokerUnavailableError(f"reading {self._topic}: {exc}") from exc
            batch = [m for m in polled if m.offset < self._ranges[m.partition].end]
            positions = self._check_ends()
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
