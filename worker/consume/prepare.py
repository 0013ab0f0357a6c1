"""Decode and validate, as one step over a polled batch: the first half of `run` and `replay`.

`prepare` decodes and validates each polled message: valid events for the write stage, dead
letters for the rest (records the Kafka client could not decode included: reason
`undecodable_record`, with no key or value). It is pure: nothing is published or written
(worker.consume.store does both).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime

from ..contract.validate import parse_with_fingerprint
from ..errors import InvalidEventError, InvalidReason
from ..types import DeadLetter, Message, Partition, Skipped, Source
from .write import ValidEvent


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
    # for the pipeline (worker.types.Skipped): where a partition's next offset goes
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

    def without(self, partitions: Collection[Partition]) -> Batch | None:
        """This batch minus the messages of `partitions`; None when nothing is left."""
        gone = set(partitions)
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
            event, fingerprint = parse_with_fingerprint(message.value, now=now)
        except InvalidEventError as exc:
            on_checked(message, False)
            letters.append(DeadLetter(message, exc.reason.value, str(exc), exc.rules))
            continue
        on_checked(message, True)
        # ValidEvent.of(event, source), with the fingerprint parse_with_fingerprint took
        source = Source(message.topic, message.partition, message.offset)
        valid.append(ValidEvent(event, source, fingerprint))
    if skipped:
        kept = [m for m in messages if type(m) is not Skipped]
    return Batch(kept, valid, letters, closed, skipped=skipped)
