"""Store, the second half of `run` and `replay`: dead letters, then one transaction per batch.

1. `store` publishes the batch's dead letters (before the transaction, so that no database lock
   waits on the broker), then writes the batch in one transaction (worker.consume.write);
   conflicting duplicates and rows the database refuses are dead-lettered just before it
   commits. `store_around_locks` stores partitions one by one when another transaction's locks
   hold the batch up.
2. `StoreLoop` runs one store at a time on a background thread (worker.consume.background_store)
   over the connection `Database` keeps, and holds a batch whose store failed for another try;
   how long to wait before it is a RetryPolicy's call (worker.settings: LIVE for `run`,
   BACKFILL for `replay`). `run` backs off itself, polling meanwhile to stay in its group
   (worker.consume.pipeline); `replay`, which has no group, waits in `StoreLoop.settle`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import psycopg

from ..db import offsets as stored_offsets
from ..db.connect import WORKER_SESSION, connect
from ..db.migrate import load_migrations, migration_status
from ..errors import DatabaseUnavailableError, FatalError, LockWaitError, RetryableError
from ..roi.methodology import DEFAULT_MIN_EXECUTIONS
from ..settings import RetryPolicy
from ..types import DeadLetter, DeadLetterSink, Partition
from .background_store import BackgroundStore
from .prepare import Batch
from .write import BatchWriter, WriteResult

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class Stored:
    """A stored batch: what became of its events, and every dead letter it produced."""

    result: WriteResult
    letters: list[DeadLetter] = field(default_factory=list)


def store(
    batch: Batch,
    writer: BatchWriter,
    dead_letters: DeadLetterSink | None,
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
    batch: Batch, writer: BatchWriter, dead_letters: DeadLetterSink | None
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
        part = batch.without(partitions - {key})
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
    return StoredAround(batch.without(held), merged, held)


class Database:
    """The store's connection to PostgreSQL: opened on first use, and again after `close`,
    which whoever saw it fail calls (DatabaseUnavailableError).

    The loop's thread and the store thread share it, never at once: the loop uses it (pings,
    stored offsets) only while no store is in flight.
    """

    def __init__(
        self,
        url: str,
        group: str,
        *,
        check_schema: bool = False,
        min_executions: int = DEFAULT_MIN_EXECUTIONS,
    ) -> None:
        self._url = url
        self._group = group
        self._check_schema = check_schema  # before the first connection is used
        self._min_executions = min_executions  # ROI_MIN_EXECUTIONS: rates rating transitions
        self._conn: psycopg.Connection[Any] | None = None
        self._writer: BatchWriter | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None

    def writer(self) -> BatchWriter:
        """The connection's writer, connecting first if need be. Raises
        DatabaseUnavailableError; FatalError when a migration is missing (`check_schema`)."""
        if self._writer is None:
            if self._check_schema:
                pending = [
                    state.migration.name
                    for state in migration_status(self._url, load_migrations())
                    if not state.applied_at
                ]
                if pending:
                    raise FatalError(
                        f"the database lacks migration {', '.join(pending)}; "
                        "run `roi-worker migrate`"
                    )
                self._check_schema = False
            self._conn = connect(self._url, autocommit=True, **WORKER_SESSION)
            self._writer = BatchWriter(self._conn, self._group, min_executions=self._min_executions)
        return self._writer

    def load_offsets(self, topics: Sequence[str]) -> dict[Partition, stored_offsets.Saved]:
        """The group's stored next offsets of `topics`, and when each was saved
        (worker/db/offsets.py), connecting first if need be. Raises DatabaseUnavailableError."""
        self.writer()
        if self._conn is None:  # writer() connects
            raise DatabaseUnavailableError("PostgreSQL: not connected")
        return stored_offsets.load(self._conn, self._group, topics)

    def cancel(self, timeout: float) -> None:
        """Cancels the statement running on the connection (its transaction rolls back), from
        another thread than the one waiting on it."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.cancel_safe(timeout=timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._writer = None, None

    def forget(self) -> None:
        """Drops the connection without closing it: a store abandoned on its way out may still
        use it, and the process's exit ends both."""
        self._conn, self._writer = None, None


class StoreLoop(Generic[T]):
    """Stores one batch at a time on a background thread, over one `Database` connection.

    `work(batch, writer)` stores a batch and returns its outcome; it runs on the store thread
    and must not touch the Kafka consumer. The caller may use the connection itself (pings,
    stored offsets) only while nothing is `busy`. A batch is `pending` from `start` until `finish`
    hands back its outcome: after a failure it is still there, to be started again once the
    caller has waited as its RetryPolicy says. The caller may narrow `pending` meanwhile (the
    partitions it lost), but only while nothing is `busy`.
    """

    def __init__(
        self, database: Database, work: Callable[[Batch, BatchWriter], T], *, name: str
    ) -> None:
        self.database = database
        self.pending: Batch | None = None
        self._work = work
        self._background: BackgroundStore[T] = BackgroundStore(name)

    @property
    def busy(self) -> bool:
        """A store is in flight, or its outcome not yet taken."""
        return self._background.busy

    @property
    def done(self) -> bool:
        """`finish` would return (or raise) at once."""
        return self._background.done

    def settled(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for the store in flight to end (BackgroundStore)."""
        return self._background.settled(timeout)

    def start(self, batch: Batch) -> None:
        """Stores `batch` on the store thread, which connects first if need be: what connecting
        raises comes out of `finish` like any other failure of the store."""
        self.pending = batch
        self._background.start(functools.partial(self._store, batch))

    def _store(self, batch: Batch) -> T:
        return self._work(batch, self.database.writer())

    def finish(self, timeout: float | None = None) -> T | None:
        """The outcome of the store in flight, once it has ended: None while it runs after
        `timeout` seconds (for ever with None), or if none is in flight. Raises what the store
        raised, the batch staying pending; a DatabaseUnavailableError closes the connection
        first, so that the next start reconnects."""
        try:
            finished = self._background.wait(timeout)
        except DatabaseUnavailableError:
            self.database.close()
            raise
        if finished is None:
            return None
        self.pending = None  # stored: it must not be stored again
        return finished.value

    def settle(self, policy: RetryPolicy, stop: threading.Event) -> T | None:
        """`finish`, for a loop with nothing else to do meanwhile: after each failure it waits
        as `policy` says and stores the pending batch again. Raises the last failure once the
        policy's attempts are used up, or at once when `stop` is set."""
        failures = 0
        while True:
            if self.pending is not None and not self.busy:
                self.start(self.pending)
            try:
                return self.finish()
            except RetryableError as exc:
                failures += 1
                delay = policy.delay(failures)
                if delay is None or stop.is_set():
                    raise
                log.warning("%s; retrying the batch in %.0f s", exc, delay)
                stop.wait(delay)

    def abandon(self, wait: float) -> None:
        """On the way out: a store still running has its statement cancelled (its transaction
        rolls back; the batch is delivered again) and `wait` seconds to end. A connection it
        still uses is not closed under it (Database.forget)."""
        if not self.busy:
            return
        if not self.done:
            self.database.cancel(wait)
        with contextlib.suppress(Exception):  # it is being abandoned: its outcome is moot
            self._background.wait(wait)
        if self.busy:
            log.warning("stopping with a batch still being stored; it will be consumed again")
            self.database.forget()
