"""One batch through decode, validate and write: the path `run` and `replay` share.

1. `prepare` decodes and validates each polled message: valid events for the write stage,
   dead letters for the rest (records the Kafka client could not decode included: reason
   `undecodable_record`, with no key or value);
2. `store` publishes those dead letters (before the transaction, so that no database lock
   waits on the broker), then writes the batch in one transaction; conflicting duplicates and
   rows the database refuses are dead-lettered just before it commits.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from kafka import TopicPartition

from worker.consume.deadletter import DeadLetter, DeadLetterPublisher
from worker.consume.write import BatchWriter, ValidEvent, WriteResult
from worker.contract.validate import parse_event
from worker.errors import InvalidEventError, InvalidReason, LockWaitError
from worker.types import Message, Partition, Skipped, Source


def _ignore(message: Message, valid: bool) -> None:
    del message, valid


@dataclass(slots=True)
class Batch:
    """Polled messages after decode and validate: what the write stage stores."""

    messages: list[Message]
    valid: list[ValidEvent]
    letters: list[DeadLetter]
    started: float  # time.monotonic() when the batch closed
    letters_published: bool = False
    # Per partition, the next offset the consumer reached past offsets that hold no message
    # for the pipeline (worker.consume.deadletter.Skipped): where a partition's next offset goes
    # beyond its last message, if anywhere. Offsets between those and the messages' hold no
    # record either.
    skipped: dict[Partition, int] = field(default_factory=dict)

    @property
    def next_offsets(self) -> dict[Partition, int]:
        offsets: dict[Partition, int] = dict(self.skipped)
        for message in self.messages:
            key = (message.topic, message.partition)
            offsets[key] = max(offsets.get(key, 0), message.offset + 1)
        return offsets

    def without(self, partitions: Collection[TopicPartition]) -> Batch | None:
        """This batch minus the messages of `partitions`; None when nothing is left."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        messages = [m for m in self.messages if (m.topic, m.partition) not in gone]
        skipped = {p: offset for p, offset in self.skipped.items() if p not in gone}
        if not messages and not skipped:
            return None
        return replace(
            self,
            messages=messages,
            valid=[v for v in self.valid if (v.source.topic, v.source.partition) not in gone],
            letters=[d for d in self.letters if (d.message.topic, d.message.partition) not in gone],
            skipped=skipped,
        )


def prepare(
    messages: list[Message],
    now: datetime,
    closed: float,
    on_checked: Callable[[Message, bool], None] = _ignore,
) -> Batch:
    """Decodes and validates; `on_checked(message, valid)` sees each message's verdict (the
    circuit breaker; a run of undecodable offsets is one verdict), and may raise to stop.
    `Skipped` entries are not messages: they only move their partition's next offset
    (Batch.skipped)."""
    valid: list[ValidEvent] = []
    letters: list[DeadLetter] = []
    skipped: dict[Partition, int] = {}
    kept = messages
    after_undecodable: tuple[str, int, int] | None = None  # the offset after the last one
    for message in messages:
        if message.undecodable is not None:
            # One verdict per run: the offsets after a bad record in its record batch cannot
            # be read either, and a corrupt batch of thousands must not open the breaker.
            if after_undecodable != (message.topic, message.partition, message.offset):
                on_checked(message, False)
            after_undecodable = (message.topic, message.partition, message.offset + 1)
            reason = InvalidReason.UNDECODABLE_RECORD
            letters.append(DeadLetter(message, reason.value, message.undecodable))
            continue
        if type(message) is Skipped:
            key = (message.topic, message.partition)
            skipped[key] = max(skipped.get(key, 0), message.offset + 1)
            continue
        try:
            event = parse_event(message.value, now=now)
        except InvalidEventError as exc:
            on_checked(message, False)
            letters.append(DeadLetter(message, exc.reason.value, str(exc), exc.rules))
            continue
        on_checked(message, True)
        valid.append(ValidEvent.of(event, Source(message.topic, message.partition, message.offset)))
    if skipped:
        kept = [m for m in messages if type(m) is not Skipped]
    return Batch(kept, valid, letters, closed, skipped=skipped)


@dataclass(slots=True)
class Stored:
    """A stored batch: what became of its events, and every dead letter it produced."""

    result: WriteResult
    letters: list[DeadLetter] = field(default_factory=list)


def store(
    batch: Batch,
    writer: BatchWriter,
    dead_letters: DeadLetterPublisher | None,
    starts: Mapping[Partition, int] | None = None,
) -> Stored:
    """Writes the batch, the next offset of its partitions and their offset ledger rows (what
    became of every message, its dead letters included) in one transaction.

    With `dead_letters` None nothing is published (a replay that leaves dead letters to the
    live workers); the dead letters are still returned. `starts`: where the reader began the
    partitions it has not stored before (BatchWriter.write). Raises RetryableError when the
    database or the dead-letter topic is unavailable: the same batch can be stored again, and
    its invalid events are then published again (the dead-letter topic is at least once).
    """
    if dead_letters is not None:
        dead_letters.connect()  # not inside the transaction (publish_refused)
        if not batch.letters_published:
            dead_letters.publish(batch.letters)
            batch.letters_published = True
    letters = list(batch.letters)

    def publish_refused(result: WriteResult) -> None:
        if not result.refused:
            return  # the usual case: no lookup to build, nothing to publish
        sources = {(m.topic, m.partition, m.offset): m for m in batch.messages}
        refused = []
        for item in result.refused:
            source = item.item.source
            message = sources[(source.topic, source.partition, source.offset)]
            refused.append(DeadLetter(message, item.reason.value, item.message))
        if dead_letters is not None:
            dead_letters.publish(refused)  # rare: conflicts and refused rows
        letters.extend(refused)

    result = writer.write(
        batch.valid,
        batch.next_offsets,
        publish_refused,
        dead_lettered=[letter.message for letter in batch.letters],
        starts=starts,
    )
    return Stored(result, letters)


@dataclass(slots=True)
class StoredAround:
    """What `store_around_locks` stored (`batch`, None if nothing) and the partitions it held
    back because another transaction's locks kept them waiting."""

    batch: Batch | None
    stored: Stored
    held: set[Partition] = field(default_factory=set)


def store_around_locks(
    batch: Batch, writer: BatchWriter, dead_letters: DeadLetterPublisher | None
) -> StoredAround:
    """`store`, except that a partition whose rows another transaction holds does not hold up
    the others: when the batch waits past lock_timeout (LockWaitError), each partition is
    stored in a transaction of its own, and those that wait again are held back, not stored.
    Their messages are to be read again from the stored offsets. Raises what `store` raises
    for anything else (some partitions may be stored by then: storing them again is
    idempotent)."""
    try:
        return StoredAround(batch, store(batch, writer, dead_letters))
    except LockWaitError:
        partitions = set(batch.next_offsets)
        if len(partitions) == 1:
            return StoredAround(None, Stored(WriteResult()), partitions)
    parts: list[Stored] = []
    held: set[Partition] = set()
    for key in sorted(partitions):
        part = batch.without([TopicPartition(*other) for other in partitions - {key}])
        if part is None:
            continue
        try:
            parts.append(store(part, writer, dead_letters))
        except LockWaitError:
            held.add(key)
    merged = Stored(WriteResult())
    for part_stored in parts:
        result = part_stored.result
        merged.result.inserted += result.inserted
        merged.result.duplicates += result.duplicates
        merged.result.refused += result.refused
        merged.result.expired += result.expired
        merged.letters += part_stored.letters
    return StoredAround(batch.without([TopicPartition(*key) for key in held]), merged, held)
