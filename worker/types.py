"""The vocabulary every stage shares, free of any client library.

- `Partition`, `Source` and `Message`: where a message came from and what was read there. The
  Kafka client's records become `Message` at the edge (worker.kafka.client), and nothing past it
  sees the client's own types.
- `Outcome`: what became of a message. One name per outcome everywhere: the `outcome` label of
  roi_worker_messages_total, the replay report, progress lines and tests.
- `DeadLetter` and `DeadLetterHeader`: an invalid message on its way to the dead-letter topic,
  and the headers it carries there, read back by `roi-worker dlq` (worker.ops.dead_letters).
- `GroupConsumer`, `RebalanceListener` and `DeadLetterSink`: the I/O edges the pipeline is given
  (worker.consume.pipeline). worker.kafka.group and worker.kafka.dead_letters implement them
  with the Kafka client; tests/fakes/kafka.py in memory.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple, Protocol

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
    """The headers a DeadLetter adds to the message (docs/event-contract.md)."""

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


# What a dead letter holds (docs/event-contract.md, "Dead letters"): the original key, value and
# headers, plus `roi.error.reason` (a stable code, see worker.errors.InvalidReason),
# `roi.error.message`, `roi.source.topic`, `roi.source.partition`, `roi.source.offset` and
# `roi.source.timestamp` (milliseconds since the epoch; left out when unknown). Publishing it is
# a DeadLetterSink's business; delivery is at least once (a crash between the broker's
# acknowledgement and the database commit publishes it again), and readers tell repeats by their
# source headers.
HEADER_PREFIXES: Final = (ERROR_PREFIX, SOURCE_PREFIX)
MAX_MESSAGE_BYTES: Final = 4096  # of roi.error.message; field errors can be long

OutgoingHeaders = list[tuple[str, bytes]]  # as published: the client refuses null values


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An invalid message, why it is invalid, and where it came from (its headers say it)."""

    message: Message
    reason: str
    error: str
    fields: str = ""  # "field:rule,..." for contract violations

    def headers(self) -> OutgoingHeaders:
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


class RebalanceListener(Protocol):
    """What a GroupConsumer tells as the group moves partitions. Called on the thread that
    polls, from inside `GroupConsumer.poll`, `join` or `leave`: it must not block (the seek to
    the stored offsets happens later, in the loop)."""

    def on_assigned(self, partitions: set[Partition]) -> None:
        """`partitions` are this member's now (besides those it had)."""

    def on_revoked(self, partitions: set[Partition]) -> None:
        """`partitions` are no longer this member's: nothing of them may be committed."""


class GroupConsumer(Protocol):
    """A member of the consumer group that reads ROI_TOPIC, for the pipeline's loop.

    Contract:
    - one thread uses it (the loop); only the rebalance listener is called back, on that thread;
    - it never commits or positions on its own: partitions start where `seek` puts them and
      offsets are committed only by `commit`. A newly assigned partition may be read from
      wherever the client likes until it is seeked, so the pipeline pauses it first;
    - Kafka failing is raised as BrokerUnavailableError (back off, retry), authorisation
      failures included: the worker then reports not ready with Kafka's error, and resumes by
      itself once an operator grants the rights. A missing topic is ConfigurationError;
    - before `join` and after `leave` it owns nothing: `assignment()` is empty.
    """

    def join(self, listener: RebalanceListener, *, first: bool) -> None:
        """Makes a client and subscribes it to the topic; partitions come with later polls.
        `first`: at start-up, when the topics are checked and the broker is waited for longer
        (a worker may start just before it); a rejoin waits briefly, as the loop retries."""

    def leave(self) -> None:
        """Closes the client without committing: the group hands its partitions to the
        others. The listener may be told they are revoked (kafka-python does so as it closes);
        the caller forgets what it owned either way, so a repeat changes nothing. Never
        raises."""

    def assignment(self) -> set[Partition]:
        """The partitions this member owns (a copy)."""

    def paused(self) -> set[Partition]:
        """The owned partitions not being fetched (a copy)."""

    def pause(self, partitions: Iterable[Partition]) -> None:
        """Stops fetching `partitions`; polls still keep the member in the group."""

    def resume(self, partitions: Iterable[Partition]) -> None:
        """Fetches `partitions` again."""

    def seek(self, offsets: Mapping[Partition, int]) -> None:
        """Reads each partition on from its offset."""

    def poll(self, timeout: float, max_messages: int) -> list[Message]:
        """Up to `max_messages` Messages, waiting up to `timeout` seconds for the first. A
        record the client cannot decode comes as a Message with `undecodable` set."""

    def skipped(self) -> list[Message]:
        """A `Skipped` entry per partition read past the last offset `poll` returned (markers
        of transactions, events of aborted ones). Asked once per batch: it may cost a scan."""

    def beginning_offsets(
        self, partitions: Collection[Partition], timeout: float
    ) -> dict[Partition, int]:
        """The first offset each partition still holds, waiting up to `timeout` seconds for
        the broker."""

    def end_offsets(
        self, partitions: Collection[Partition], timeout: float
    ) -> dict[Partition, int]:
        """The offset after each partition's last committed record, waiting up to `timeout`
        seconds for the broker."""

    def highwater(self, partition: Partition) -> int | None:
        """The partition's end as of the last fetch (no round trip); None if unknown."""

    def commit(self, offsets: Mapping[Partition, int]) -> bool:
        """Commits next offsets to the group; False when a rebalance refused them (this member
        is losing or lost the partitions: not a failure, the database has the offsets)."""


class DeadLetterSink(Protocol):
    """Where dead letters go: the dead-letter topic.

    Thread-safety: one thread publishes (the store thread); `reset` may come from any other.
    """

    def connect(self) -> None:
        """Gets ready to publish, so that a publish inside a database transaction does not wait
        for a connection. Raises BrokerUnavailableError."""

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Returns once the broker has acknowledged every letter. Raises
        BrokerUnavailableError when it did not in time (publish them again later), FatalError
        when it never will (no right to write the topic, say)."""

    def reset(self) -> None:
        """Asks for a fresh connection at the next publish (a wedged client is left behind)."""

    def close(self) -> None:
        """Waits a moment for what is still being sent, then closes; only once nothing
        publishes any more."""
