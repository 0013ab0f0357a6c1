"""The vocabulary every stage shares, free of any client library.

- `Partition`, `Source` and `Message`: where a message came from and what was read there. The
  Kafka client's records become `Message` at the edge (worker.kafka.client), and nothing past it
  sees the client's own types.
- `Outcome`: what became of a message. One name per outcome everywhere: the `outcome` label of
  roi_worker_messages_total, the replay report, progress lines and tests.
- `DeadLetterHeader`: the headers a dead letter carries, written by consume/deadletter.py and read
  back by `roi-worker dlq` (worker.ops.dead_letters).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

Partition = tuple[str, int]  # (topic, partition)
SourceHeaders = list[tuple[str, bytes | None]]  # as consumed: Kafka allows null values


# Named tuples, not frozen dataclasses: one of each is made per consumed message, and a frozen
# dataclass's __init__ costs several times as much.
class Source(NamedTuple):
    """Where a message came from."""

    topic: str
    partition: int
    offset: int


class Message(NamedTuple):
    """A consumed message, as much of it as the pipeline and its dead letters need."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # milliseconds since the epoch
    key: bytes | None
    value: bytes | None
    headers: SourceHeaders
    # Set when the client could not read the record at this offset at all: its error. Key,
    # value and headers are then unknown (None, None, []), and so is the timestamp (-1).
    undecodable: str | None = None

    @classmethod
    def of_undecodable(cls, topic: str, partition: int, offset: int, error: str) -> Message:
        """The offset of a record the client cannot decode: dead-lettered, never stored."""
        return cls(topic, partition, offset, -1, None, None, [], error)


class Skipped(Message):
    """Not a message: the consumer read its partition up to `offset` (inclusive) and found
    nothing more for the pipeline there (transaction markers, events of aborted transactions,
    records removed by compaction). They take offsets too, so the next offset to store is
    `offset + 1`, or the stored offset would stop short of the partition's end.
    """

    __slots__ = ()

    @classmethod
    def up_to(cls, topic: str, partition: int, next_offset: int) -> Skipped:
        return cls(topic, partition, next_offset - 1, -1, None, None, [])


class Outcome(StrEnum):
    """What became of a consumed message."""

    INSERTED = "inserted"  # stored: a new event_id
    DUPLICATE = "duplicate"  # the same event stored before: nothing changed
    CONFLICT = "conflict"  # a stored event_id with other content: dead-lettered
    REFUSED = "refused"  # valid, but the database refused the row: dead-lettered
    EXPIRED = "expired"  # older than the retention horizon: counted, not stored
    INVALID = "invalid"  # not an event of the contract (or unreadable): dead-lettered


class DeadLetterHeader(StrEnum):
    """The headers worker.consume.deadletter adds to a dead letter (docs/event-contract.md)."""

    REASON = "roi.error.reason"  # an InvalidReason code
    MESSAGE = "roi.error.message"
    FIELDS = "roi.error.fields"  # "field:rule,..." for contract violations
    VALUE_DROPPED_BYTES = "roi.error.value_dropped_bytes"
    SOURCE_TOPIC = "roi.source.topic"
    SOURCE_PARTITION = "roi.source.partition"
    SOURCE_OFFSET = "roi.source.offset"
    SOURCE_TIMESTAMP = "roi.source.timestamp"  # milliseconds; left out when unknown
    REDRIVE_COUNT = "roi.redrive.count"  # times the event was redriven (ASCII decimal)
    REDRIVE_SOURCE = "roi.redrive.source"  # topic/partition/offset of the letter redriven


# Headers a new dead letter replaces and a redrive removes, by prefix.
ERROR_PREFIX = "roi.error."
SOURCE_PREFIX = "roi.source."
REDRIVE_PREFIX = "roi.redrive."
