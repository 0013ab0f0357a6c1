"""`roi-worker replay`: re-read a bounded range of a topic through the write path of `run`.

In order:
1. plan: snapshot every partition's end offset now (and cut it at `--to-time`), and find the
   start offsets (the beginning, a time, or explicit offsets). The replay reads exactly
   [start, end) of each partition, so it always ends;
2. read the ranges with partitions assigned directly: no consumer group joins, so the live
   group, its members and its committed offsets are untouched;
3. each batch goes through decode, validate and the same one-transaction write as `run`
   (worker.consume.prepare, worker.consume.store: the same store loop, retried as the BACKFILL
   policy says): idempotent on event_id, summaries incremented only by new rows. The
   positions reached are stored in PostgreSQL under the replay's own group, never the live one,
   with the offset ledger's rows; a partition's first batch starts its group at the plan's
   start (a `replay` row in the ledger if the group stood elsewhere);
4. report read, inserted, duplicates, invalid, conflicts, refused and expired per partition.

Dead letters are left to the live workers unless asked for: a replay over messages the live
group has already seen would otherwise publish every invalid one again.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

from ..consume.prepare import Batch, prepare
from ..consume.store import Database, StoreLoop, store
from ..consume.write import BatchWriter, WriteResult, conflict
from ..errors import ConfigurationError, InvalidReason, RetryableError
from ..kafka.dead_letters import open_dead_letters
from ..kafka.topic_range import PartitionRange, RangeConsumer, RangeReader, bounds, offsets_at
from ..settings import BACKFILL, RetryPolicy, Settings
from ..types import DeadLetterSink

log = logging.getLogger(__name__)

DEAD_LETTER_TIMEOUT_SECONDS: Final = 10.0
Start = Literal["beginning"] | datetime | Mapping[int, int]


@dataclass(slots=True)
class PartitionReport:
    """One partition's range and what became of its messages."""

    partition: int
    start: int
    end: int
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    invalid: int = 0
    conflicts: int = 0
    refused: int = 0
    expired: int = 0
    position: int = field(default=-1)  # next offset to read; start until something is read
    done: bool = False

    def __post_init__(self) -> None:
        if self.position < 0:
            self.position = self.start

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class Plan:
    """The ranges to replay; `end` offsets were fixed when the plan was made."""

    topic: str
    partitions: tuple[PartitionReport, ...]

    @property
    def total(self) -> int:
        return sum(p.size for p in self.partitions)


def plan_replay(
    consumer: RangeConsumer, topic: str, start: Start, to_time: datetime | None = None
) -> Plan:
    """The ranges from `start` to the end offsets as of now (or `to_time`, if earlier).

    Raises ConfigurationError for offsets of partitions the topic lacks or beyond an end.
    """
    limits = bounds(consumer, topic)
    ends = {p: end for p, (_, end) in limits.items()}
    if to_time is not None:
        ends = {
            p: min(end, offsets_at(consumer, topic, to_time, ends)[p]) for p, end in ends.items()
        }
    if start == "beginning":
        starts = {p: first for p, (first, _) in limits.items()}
    elif isinstance(start, datetime):
        starts = offsets_at(consumer, topic, start, ends)
    else:
        unknown = sorted(set(start) - set(limits))
        if unknown:
            raise ConfigurationError(
                f"--from-offsets: {topic} has no partition {', '.join(map(str, unknown))} "
                f"(it has {len(limits)})"
            )
        beyond = [f"{p}:{o} (end {limits[p][1]})" for p, o in start.items() if o > limits[p][1]]
        if beyond:
            raise ConfigurationError(f"--from-offsets beyond the end: {', '.join(beyond)}")
        # Partitions not named are not replayed; offsets deleted by the topic's retention
        # cannot be read, so a start before the first kept offset starts there.
        starts = {
            p: max(start[p], first) if p in start else ends[p] for p, (first, _) in limits.items()
        }
    return Plan(
        topic,
        tuple(PartitionReport(p, min(starts[p], ends[p]), ends[p]) for p in sorted(limits)),
    )


class Replay:
    """Runs a plan (module docstring). `stop` ends it early, after the current batch."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        group: str,
        *,
        dry_run: bool = False,
        dead_letters: bool = False,
        progress: Callable[[int], None] | None = None,
        retry: RetryPolicy = BACKFILL,
    ) -> None:
        self._settings = settings
        self._retry = retry
        self._plan = plan
        self._group = group
        self._dry_run = dry_run
        self._dead_letters = dead_letters and not dry_run
        self._progress = progress or (lambda read: None)
        self._by_partition = {p.partition: p for p in plan.partitions}
        self._previewed: dict[bytes, bytes] = {}  # a dry run's "stored" events: id -> content
        # Partitions with a batch stored in this run: the others start at the plan's start,
        # whatever their group stored before (the ledger records the move: worker/db/ledger.py).
        self._started: set[int] = set()
        self.read = 0

    def run(self, consumer: RangeConsumer, stop: threading.Event | None = None) -> Plan:
        """Reads and stores every range; returns the plan with its counts filled in."""
        settings = self._settings
        ranges = [PartitionRange(p.partition, p.start, p.end) for p in self._plan.partitions]
        reader = RangeReader(consumer, self._plan.topic, ranges)
        publisher = None
        if self._dead_letters:
            publisher = open_dead_letters(
                settings,
                settings.dead_letter_topic,
                client_id="roi-worker-replay",
                timeout=DEAD_LETTER_TIMEOUT_SECONDS,
            )
        pause = stop or threading.Event()
        database = Database(
            settings.database_url.get_secret_value(),
            self._group,
            min_executions=settings.min_executions,  # rates rating transitions as `run` does
        )
        # Partitions read to their end and stored: the reader says a partition is done when
        # it hands out its last batch, which only counts once that batch is stored.
        completed = {p.partition for p in self._plan.partitions if p.size == 0}
        done_when_stored: set[int] = set()  # what the reader had done when the batch was read
        # Batch N is written on a thread of its own while batch N+1 is read and validated.
        writing: StoreLoop[tuple[Batch, WriteResult]] = StoreLoop(
            database,
            lambda batch, writer: (batch, self._write(batch, writer, publisher)),
            name="roi-replay-store",
        )

        def finish(*, progress: bool = True) -> None:
            finished = writing.settle(self._retry, pause)
            if finished is None:
                return
            batch, result = finished
            self._account(batch, result)
            completed.update(done_when_stored)
            self.read += len(batch.messages)
            if progress:
                self._progress(self.read)

        try:
            for messages in reader.batches(settings.batch_max_messages, stop):
                batch = prepare(messages, now=datetime.now(UTC), closed=time.monotonic())
                finish()
                done_when_stored = set(reader.done)
                writing.start(batch)
            finish()
            completed |= reader.done  # ends with nothing left to read (e.g. compacted away)
        finally:
            try:
                if writing.busy:  # stopped or failing while a batch is written: let it finish,
                    pause.set()  # without the retries (Ctrl-C does not set the stop event)
                    with contextlib.suppress(RetryableError):
                        finish(progress=False)
            finally:
                database.close()
                if publisher is not None:
                    publisher.close()
                for report in self._plan.partitions:  # also when stopped or failing: the report
                    report.done = report.partition in completed
                    if report.done:
                        report.position = report.end
        return self._plan

    def _write(
        self, batch: Batch, writer: BatchWriter, publisher: DeadLetterSink | None
    ) -> WriteResult:
        """Stores (or previews) the batch: the store thread's work (StoreLoop)."""
        if self._dry_run:
            return self._remember(writer.preview(batch.valid))
        starts = {
            (self._plan.topic, p): self._by_partition[p].start
            for p in {m.partition for m in batch.messages} - self._started
        }
        result = store(batch, writer, publisher, starts).result
        self._started.update(p for _, p in starts)
        return result

    def _remember(self, result: WriteResult) -> WriteResult:
        """A dry run writes nothing, so the database cannot tell it which events an earlier
        batch would have inserted: those are remembered here (16 bytes of id each)."""
        inserted = []
        for item in result.inserted:
            earlier = self._previewed.get(item.event.event_id.bytes)
            if earlier is None:
                self._previewed[item.event.event_id.bytes] = item.fingerprint
                inserted.append(item)
            elif earlier == item.fingerprint:
                result.duplicates.append(item)
            else:
                result.refused.append(conflict(item))
        result.inserted = inserted
        return result

    def _account(self, batch: Batch, result: WriteResult) -> None:
        for message in batch.messages:
            report = self._by_partition[message.partition]
            report.read += 1
            report.position = max(report.position, message.offset + 1)
        for items, name in (
            (result.inserted, "inserted"),
            (result.duplicates, "duplicates"),
            (result.expired, "expired"),
        ):
            for item in items:
                report = self._by_partition[item.source.partition]
                setattr(report, name, getattr(report, name) + 1)
        for refusal in result.refused:
            report = self._by_partition[refusal.item.source.partition]
            if refusal.reason is InvalidReason.CONFLICTING_DUPLICATE:
                report.conflicts += 1
            else:
                report.refused += 1
        for letter in batch.letters:
            self._by_partition[letter.message.partition].invalid += 1


def choose_group(settings: Settings, requested: str | None, now: datetime) -> str:
    """`requested`, or a new, dated group whose stored positions mix with no other's.

    Raises ConfigurationError for the live group: a replay never moves its positions.
    """
    if requested is None:
        return f"roi-backfill-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    if requested == settings.group_id:
        raise ConfigurationError(
            f"--group {requested} is the live group (ROI_GROUP_ID); a replay never moves its "
            "positions: choose another name"
        )
    return requested
