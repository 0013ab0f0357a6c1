"""The one place that wires the stages: poll -> decode -> validate -> write -> commit.

Each batch goes through these steps, in this order (docs/architecture.md):
1. poll until ROI_BATCH_MAX_MESSAGES messages or ROI_BATCH_MAX_SECONDS;
2. decode and validate each message; the invalid ones are published to the dead-letter topic
   (the circuit breaker counts them) and acknowledged;
3. one database transaction stores the new events, increments the summaries and saves the next
   offset of each partition; conflicting duplicates and rows the database refuses are
   dead-lettered, and acknowledged, just before it commits;
4. only then are the offsets committed to Kafka.

Step 3 runs on a thread of its own (consume/store.py, StoreLoop) while the loop polls, decodes
and validates the next batch; batches are still stored one at a time, in the order polled.

The database, not Kafka, says where each partition resumes: a newly assigned partition stays
paused until it has been seeked to the offset stored in PostgreSQL. When PostgreSQL or the
dead-letter topic is unavailable the worker pauses every partition, keeps polling (so it stays
in the group), retries the same batch with backoff (RetryPolicy LIVE: up to 5 s) and reports
not ready. A partition with events waiting that stores nothing for ROI_STALL_SECONDS makes the
worker stalled (worker/consume/stall.py): it fails /readyz (and /healthz, unless an outage
explains it) and hands its partitions back.

Kafka is reached only through the GroupConsumer and the DeadLetterSink it is given
(worker.types; worker.kafka builds the real ones from the settings by default).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from prometheus_client import CollectorRegistry, ProcessCollector

from ..errors import (
    BrokerUnavailableError,
    CircuitOpenError,
    DatabaseUnavailableError,
    FatalError,
    InvalidReason,
    RetryableError,
)
from ..kafka.dead_letters import open_dead_letters
from ..kafka.group import KafkaGroupConsumer
from ..metrics import PatternCollector, WorkerMetrics
from ..settings import LIVE, RetryPolicy, Settings
from ..types import DeadLetter, DeadLetterSink, GroupConsumer, Message, Outcome, Partition
from .circuit_breaker import CircuitBreaker
from .commit import OffsetCommitter
from .health import StatusServer, WorkerStatus
from .prepare import Batch, prepare
from .stall import StallWatch
from .store import Database, StoredAround, StoreLoop, store_around_locks
from .write import BatchWriter, WriteResult

log = logging.getLogger(__name__)

POLL_SLICE_SECONDS: Final = 1.0  # the longest the loop blocks in poll(): how fast it sees stop
LAG_REFRESH_SECONDS: Final = 5.0
LAG_TIMEOUT_SECONDS: Final = 2.0
DATABASE_CHECK_SECONDS: Final = 5.0
DEAD_LETTER_TIMEOUT_SECONDS: Final = 5.0
KAFKA_TIMEOUT_SECONDS: Final = 5.0  # offset lookups
PROGRESS_LOG_SECONDS: Final = 30.0
STOP_WAIT_SECONDS: Final = 4.0  # for the batch in flight at stop (process.py allows 9 s in all)
ABANDON_WAIT_SECONDS: Final = 1.0  # for a cancelled store to roll back before its connection closes
STORE_CHECK_SECONDS: Final = 0.05  # the longest poll while a batch is being stored
HOLD_SECONDS: Final = (
    5.0  # a partition whose batch waited on another's locks, before it is read again
)

# Work beside consuming (ROI_RETENTION_DAYS, say), started by `run` with the event `stop` sets:
# it must return at once (running on a thread of its own) and end when the event is set.
Chore = Callable[[threading.Event], None]


class Pipeline:
    """A consumer-group member that stores events from ROI_TOPIC until `stop()` is called."""

    def __init__(
        self,
        settings: Settings,
        *,
        consumer: GroupConsumer | None = None,
        dead_letters: DeadLetterSink | None = None,
        database: Database | None = None,
        chores: Sequence[Chore] = (),
        retry: RetryPolicy = LIVE,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """What is not given is built from `settings`: the Kafka group member and dead-letter
        producer (worker.kafka), the PostgreSQL connection (checked for missing migrations)."""
        self._settings = settings
        self._consumer: GroupConsumer = consumer or KafkaGroupConsumer(settings)
        self._dead_letters: DeadLetterSink = dead_letters or open_dead_letters(
            settings,
            settings.dead_letter_topic,
            client_id="roi-worker",
            timeout=DEAD_LETTER_TIMEOUT_SECONDS,
        )
        self._database = database or Database(
            settings.database_url.get_secret_value(),
            settings.group_id,
            check_schema=True,
            min_executions=settings.min_executions,
        )
        self._chores = tuple(chores)
        self._retry = retry
        self._registry = registry or CollectorRegistry()
        ProcessCollector(registry=self._registry)  # process_resident_memory_bytes, CPU, fds
        self._metrics = WorkerMetrics(self._registry)
        self._status = WorkerStatus()
        self._breaker = CircuitBreaker(settings.dlq_max_ratio)
        self._stop = threading.Event()
        self._pending: list[Message] = []
        self._pending_bytes = 0
        self._stall: StallWatch[Partition] = StallWatch(settings.stall_seconds)
        self._stalled_at: float | None = None  # monotonic time the worker declared a stall
        self._broker_unreachable = False  # the broker's end offsets could not be read
        self._batch: Batch | None = None  # prepared, waiting for the store in flight
        # The batch being stored, or to store again after a failure: self._store.pending.
        self._store: StoreLoop[StoredAround] = StoreLoop(
            self._database, self._store_batch, name="roi-store"
        )
        self._committer = OffsetCommitter(self._consumer)
        self._assigned: set[Partition] = set()  # and not revoked since
        self._held: dict[Partition, float] = {}  # held back until (monotonic time)
        self._unpositioned: set[Partition] = set()
        self._start_offsets: dict[Partition, int] = {}  # where unstored partitions start
        self._degraded: str | None = None
        self._circuit: str | None = None  # why the circuit breaker opened
        self._failures = 0  # in a row: what the retry policy's backoff depends on
        self._backoff = 0.0
        self._consumer_open = False
        self._lag_due = 0.0
        self._database_seen = 0.0  # monotonic time of the last statement that worked
        self._progress = _Progress()
        # The same verdict as /readyz, read at scrape time: an outage, a stall, starting.
        self._metrics.ready.set_function(lambda: float(self._status.ready()[0]))

    @property
    def status(self) -> WorkerStatus:
        return self._status

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Asks the loop to finish; safe from signal handlers and other threads."""
        self._stop.set()

    def run(self) -> None:
        """Consumes until stopped. Raises FatalError (with an operator-ready message),
        ConfigurationError for a missing topic, or BrokerUnavailableError when Kafka cannot be
        reached at start-up."""
        settings = self._settings
        with contextlib.ExitStack() as cleanup:  # closed in reverse order, whatever happens
            server = StatusServer(
                settings.metrics_host, settings.metrics_port, self._registry, self._status
            )
            server.start()
            cleanup.callback(server.stop)
            log.info("metrics, /healthz and /readyz on http://%s", server.address)
            patterns = PatternCollector(
                settings.database_url.get_secret_value(),
                settings.metrics_max_patterns,
                self._metrics.db_errors,
                settings.min_executions,
            )
            self._registry.register(patterns)
            cleanup.callback(patterns.close)
            cleanup.callback(self._database.close)
            cleanup.callback(self._dead_letters.close)
            cleanup.callback(self._leave)  # leaves the group
            self._join(first=True)
            for chore in self._chores:
                chore(self._stop)
            cleanup.callback(self._mark_stopped)
            # First: the store uses the producer and the connection too.
            cleanup.callback(self._store.abandon, ABANDON_WAIT_SECONDS)
            log.info(
                "consuming %s as group %s; dead letters to %s",
                settings.topic,
                settings.group_id,
                settings.dead_letter_topic,
            )
            while not self._stop.is_set():
                self._step()
            self._finish_on_stop()
            if not self._committer.commit(force=True):
                self._metrics.kafka_errors.inc()
        log.info("stopped")

    def _join(self, *, first: bool) -> None:
        """Joins the group, unless this worker is in it already (GroupConsumer.join says how
        long that may take). Raises BrokerUnavailableError when the broker does not answer."""
        if self._consumer_open:
            return
        self._consumer.join(self, first=first)
        self._consumer_open = True
        self._committer = OffsetCommitter(self._consumer)

    def _leave(self) -> None:
        """Leaves the group: what this worker owned is assigned to the others."""
        if self._consumer_open:
            self._consumer_open = False
            self._consumer.leave()

    # ------------------------------------------------------------------ the loop

    def _step(self) -> None:
        self._status.tick()
        try:
            self._join(first=False)  # if handed back and not rejoined since
            if not self._committer.commit():  # a commit that failed after the last batch
                self._metrics.kafka_errors.inc()
            self._finish_store(timeout=0)
            if self._due_for_position():
                if not self._wait_for_store():  # positioning reads offsets over its connection
                    return  # stopping: _finish_on_stop takes it from here
                self._finish_store()
                self._position()
            if self._store.pending is not None and not self._store.busy:
                # Again, after a failure and _degrade's backoff: only what is still ours.
                self._store.pending = self._owned(self._store.pending)
                if self._store.pending is not None:
                    self._store.start(self._store.pending)
            if self._batch is None:
                self._collect()
            if self._batch is not None and not self._store_prepared():
                return
            if not self._store.busy:
                self._check_database()
                if self._degraded:
                    self._recover()
            self._refresh_lag()
            self._check_stall()
            self._progress.maybe_log()
        except RetryableError as exc:
            self._degrade(exc)

    def _store_prepared(self) -> bool:
        """Hands the prepared batch to the store thread once the store in flight has ended;
        False if the worker is stopping first."""
        if not self._wait_for_store():
            return False  # _finish_on_stop takes it from here
        self._finish_store()
        # The wait polled: a rebalance may have taken every partition of the batch.
        batch, self._batch = self._batch, None
        if batch is not None:
            self._store.start(batch)
        return True

    def _collect(self) -> None:
        settings = self._settings
        limit = settings.batch_max_messages
        deadline = time.monotonic() + settings.batch_max_seconds
        while (
            len(self._pending) < limit
            and self._pending_bytes < settings.batch_max_bytes
            and not self._stop.is_set()
        ):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not self._consumer.assignment():
                # Still joining the group, so nothing to batch: kafka-python's join needs
                # polls longer than a short batch window (0.1 s ones never finished it).
                remaining = POLL_SLICE_SECONDS
            if self._store.busy:
                # Commit the stored batch's offsets to Kafka soon after it is stored.
                self._finish_store(timeout=0)
                remaining = min(remaining, STORE_CHECK_SECONDS)
            polled = len(self._pending)
            self._poll(min(remaining, POLL_SLICE_SECONDS), limit - len(self._pending))
            self._pending_bytes += _size(self._pending[polled:])
        # Offsets read past without a message (transaction markers) are stored too.
        self._pending += self._consumer.skipped()
        if self._pending and not self._stop.is_set():
            try:
                self._batch = prepare(
                    self._pending,
                    now=datetime.now(UTC),
                    closed=time.monotonic(),
                    on_checked=lambda message, valid: self._breaker.record(
                        not valid, (message.topic, message.partition)
                    ),
                )
            except CircuitOpenError as exc:
                self._open_circuit(exc)
            self._pending, self._pending_bytes = [], 0

    def _poll(self, seconds: float, max_records: int) -> None:
        # Records the client cannot decode come as dead letters to be (Message.undecodable).
        polled = self._consumer.poll(seconds, max_records)
        self._status.tick()
        self._pending.extend(polled)

    def _store_batch(self, batch: Batch, writer: BatchWriter) -> StoredAround:
        """The store thread's work (StoreLoop): never touches the consumer."""
        around = store_around_locks(batch, writer, self._dead_letters)
        if around.batch is not None:
            # Here, not in the loop: /metrics counts a batch as soon as it is stored.
            stored = around.stored
            self._record(around.batch, stored.result, stored.letters, time.time())
        return around

    def _finish_store(self, timeout: float | None = None) -> None:
        """Takes in the outcome of the store in flight, waiting up to `timeout` seconds (for
        ever with None) for it. Raises what the store raised; the batch is then stored again
        by a later step."""
        around = self._store.finish(timeout)
        if around is None:
            return
        self._database_seen = time.monotonic()
        if around.held:
            self._hold_back(around.held)
        batch, result = around.batch, around.stored.result
        if batch is None:
            return
        self._progress.add(len(result.inserted), len(result.duplicates), len(around.stored.letters))
        # A partition revoked while its batch was in flight is no longer ours to commit.
        assigned = self._consumer.assignment()
        stored = {p: offset for p, offset in batch.next_offsets.items() if p in assigned}
        self._committer.stored(stored)
        if not self._committer.commit():
            self._metrics.kafka_errors.inc()
        now = time.monotonic()
        for partition, offset in stored.items():
            if self._stall.stored(partition, offset, now):
                self._mark_stored(partition, time.time())
            end = self._consumer.highwater(partition)  # from the last fetch: no round trip
            if end is not None:
                self._set_lag(partition, end - offset)

    def _wait_for_store(self) -> bool:
        """Waits for the store in flight to end; False if the worker is stopping first.

        A store that takes long (a lock wait) must not stop the loop from polling: a
        rebalance of the group waits for every member to poll. After a second, it polls with
        every partition paused until the store ends."""
        if self._store.settled(POLL_SLICE_SECONDS):
            return True
        log.info("the batch being stored takes long; polling with the partitions paused")
        paused = self._consumer.assignment() - self._consumer.paused()
        self._consumer.pause(paused)
        try:
            while not self._stop.is_set() and not self._store.settled(0):
                # Nothing is fetched while paused; the poll runs the group protocol.
                self._poll(POLL_SLICE_SECONDS, self._settings.batch_max_messages)
                self._refresh_lag()
                self._check_stall()
        finally:
            if not self._degraded:
                still = paused & self._consumer.assignment()
                self._resume(still - self._unpositioned)
        return self._store.settled(0)

    def _finish_on_stop(self) -> None:
        try:
            if self._store.busy and not self._store.done:
                log.info("stopping: waiting for the batch being stored")
            self._finish_store(timeout=STOP_WAIT_SECONDS)
        except RetryableError as exc:
            log.warning("the last batch was not stored (%s); it will be consumed again", exc)
        if self._store.busy:
            log.warning("the last batch was still being stored after %.0f s", STOP_WAIT_SECONDS)
        if self._batch or self._pending or self._store.pending:
            log.info("stopping: the events not yet stored are left for re-delivery")

    def _owned(self, batch: Batch) -> Batch | None:
        """The batch without the partitions revoked since it was polled."""
        return batch.without(set(batch.next_offsets) - self._consumer.assignment())

    def _record(
        self, batch: Batch, result: WriteResult, letters: list[DeadLetter], stored_at: float
    ) -> None:
        metrics = self._metrics
        conflicts = sum(r.reason is InvalidReason.CONFLICTING_DUPLICATE for r in result.refused)
        counts = {
            Outcome.INSERTED: len(result.inserted),
            Outcome.DUPLICATE: len(result.duplicates),
            Outcome.CONFLICT: conflicts,
            Outcome.REFUSED: len(result.refused) - conflicts,
            Outcome.EXPIRED: len(result.expired),
            # Every refused row is dead-lettered too; the other letters are invalid messages.
            Outcome.INVALID: len(letters) - len(result.refused),
        }
        for outcome, count in counts.items():
            metrics.messages.labels(outcome).inc(count)
        for letter in letters:
            metrics.dead_letters.labels(letter.reason).inc()
        # One observation of the whole batch: this runs on the store thread, whose every
        # Python step the consuming loop waits out (the GIL).
        metrics.event_delay.observe_batch(
            [max(0.0, stored_at - item.event.executed_at.timestamp()) for item in result.inserted]
        )
        metrics.batch_size.observe(len(batch.messages))
        metrics.batch_duration.observe(time.monotonic() - batch.started)
        metrics.last_commit.set(stored_at)
        for letter in letters:
            log.debug(
                "dead-lettered %s/%d@%d: %s",
                letter.message.topic,
                letter.message.partition,
                letter.message.offset,
                letter.error,
            )

    def _position(self) -> None:
        """Seeks newly assigned partitions to the offsets stored in PostgreSQL, then resumes.

        A partition with no stored offset has nothing stored for this group, so it starts from
        the beginning (whatever Kafka's committed offset says: the database may be new or
        restored). A stored offset beyond the partition's end means the topic was recreated or
        truncated; resuming there would skip events, so the worker stops and says so.
        """
        partitions = self._due_for_position()
        if not partitions:
            return
        self._writer()  # connected, and the worker ready if this is the first connection
        positions = self._database.load_offsets(sorted({topic for topic, _ in partitions}))
        stored = {key: saved.next_offset for key, saved in positions.items()}
        ends = self._consumer.end_offsets(partitions, KAFKA_TIMEOUT_SECONDS)
        beyond = [
            f"{topic}/{number}: stored {stored[(topic, number)]}, end {ends[(topic, number)]}"
            for topic, number in partitions
            if stored.get((topic, number), 0) > ends.get((topic, number), 0)
        ]
        if beyond:
            raise FatalError(
                f"stored offsets are beyond the end of the topic ({'; '.join(beyond)}): was it "
                "recreated? See docs/operations.md, 'Stored offsets beyond the end'"
            )
        starts = self._consumer.beginning_offsets(partitions, KAFKA_TIMEOUT_SECONDS)
        for p in partitions:
            if p in stored and stored[p] < starts[p]:
                self._metrics.kafka_errors.inc()
                log.error(
                    "%s/%d: offsets %d to %d were deleted by the topic's retention before they "
                    "were stored; they are lost to this database (docs/operations.md, "
                    "'Events deleted before they were stored')",
                    *p,
                    stored[p],
                    starts[p] - 1,
                )
        # Fresh partitions start at the beginning, whatever Kafka's committed offset says.
        self._start_offsets.update({p: starts[p] for p in partitions if p not in stored})
        self._consumer.seek({p: stored.get(p, starts[p]) for p in partitions})
        # Kafka catches up if it was behind.
        self._committer.stored({p: stored[p] for p in partitions if p in stored})
        now = time.time()
        for p in partitions:
            saved = positions.get(p)
            self._mark_stored(p, saved.saved_at.timestamp() if saved else now)
        self._unpositioned.difference_update(partitions)
        for p in partitions:
            self._held.pop(p, None)
        if not self._degraded:
            self._resume(partitions)
        self._lag_due = 0.0
        log.info(
            "assigned %s",
            ", ".join(f"{t}/{n}@{stored.get((t, n), 'start')}" for t, n in partitions),
        )

    # ------------------------------------------------------------------ failures

    def _degrade(self, exc: RetryableError) -> None:
        if isinstance(exc, DatabaseUnavailableError):
            self._metrics.db_errors.inc()
            self._database.close()  # the next attempt reconnects
        else:
            self._metrics.kafka_errors.inc()
        self._failures += 1
        delay = self._retry.delay(self._failures)
        if delay is None:  # a policy that gives up (LIVE never does): the worker stops
            raise exc
        self._backoff = delay
        if self._degraded is None:
            log.warning("%s; pausing consumption and retrying", exc)
        else:
            log.info("still failing (%s); next retry in %.1f s", exc, self._backoff)
        self._degraded = exc.outage
        self._status.set_ready(False, f"{exc.outage} (the worker's log says why)")
        if self._consumer_open:
            self._consumer.pause(self._consumer.assignment())
        deadline = time.monotonic() + self._backoff
        while not self._stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            # Polling with every partition paused returns nothing but keeps us in the group.
            wait = min(remaining, POLL_SLICE_SECONDS)
            if not self._consumer_open:
                self._stop.wait(wait)
                continue
            try:
                self._poll(wait, self._settings.batch_max_messages)
                # The outage is when lag and stalls matter most: keep both current.
                self._refresh_lag()
                self._check_stall()
            except RetryableError as error:
                self._metrics.kafka_errors.inc()
                log.debug("poll failed while paused: %s", error)
                self._stop.wait(wait)  # a poll that fails at once must not spin

    def _recover(self) -> None:
        log.warning("recovered; resuming consumption")
        self._degraded = None
        self._failures, self._backoff = 0, 0.0
        self._resume(self._consumer.assignment() - self._unpositioned)
        self._mark_ready()

    def _mark_stopped(self) -> None:
        self._status.set_ready(False, "stopped")

    def _mark_ready(self) -> None:
        self._status.set_ready(True)

    def _writer(self) -> BatchWriter:
        """The database connection's writer, for the loop's own statements (never while a
        store is in flight). The first connection makes the worker ready."""
        connected = self._database.connected
        writer = self._database.writer()
        if not connected and not self._degraded:
            self._mark_ready()
        return writer

    def _check_database(self) -> None:
        """While idle, pings PostgreSQL now and then, so that readiness tells the truth before
        the next batch finds out."""
        if time.monotonic() - self._database_seen < DATABASE_CHECK_SECONDS:
            return
        self._writer().ping()
        self._database_seen = time.monotonic()

    def _refresh_lag(self) -> None:
        """Lag from the broker's end offsets and the offsets stored in the database (known here:
        this worker stores its partitions). Refreshed during outages of either; when it cannot
        be, the last values stay and roi_worker_consumer_lag_stale says so."""
        if time.monotonic() < self._lag_due:
            return
        self._lag_due = time.monotonic() + LAG_REFRESH_SECONDS
        assigned = self._consumer.assignment()
        if not assigned:
            self._metrics.consumer_lag_stale.set(0)
            return
        try:
            ends = self._consumer.end_offsets(assigned, LAG_TIMEOUT_SECONDS)
        except BrokerUnavailableError as exc:
            self._metrics.kafka_errors.inc()
            self._metrics.consumer_lag_stale.set(1)
            self._broker_unreachable = True
            cause = type(exc.__cause__ or exc).__name__  # the client's error, not ours
            self._status.set_problem("kafka", f"Kafka: cannot read end offsets ({cause})")
            log.warning("cannot read end offsets for the lag metric: %s", exc)
            return
        self._broker_unreachable = False
        self._status.set_problem("kafka", None)
        unknown = False
        now = time.monotonic()
        for partition, end in ends.items():
            base = self._committer.stored_offset(partition)
            if base is None:
                base = self._start_offsets.get(partition)
            if base is None or partition in self._unpositioned:  # assigned while it was down
                unknown = True
                continue
            self._set_lag(partition, end - base)
            self._stall.lag(partition, end - base, now)
        self._metrics.consumer_lag_stale.set(1 if unknown else 0)

    def _set_lag(self, partition: Partition, lag: int) -> None:
        topic, number = partition
        self._metrics.consumer_lag.labels(topic, str(number)).set(max(0, lag))

    # ------------------------------------------------------------------ stalls

    def _mark_stored(self, partition: Partition, when: float) -> None:
        topic, number = partition
        self._metrics.partition_stored.labels(topic, str(number)).set(when)

    # ------------------------------------------------------------------ circuit breaker

    def _open_circuit(self, exc: CircuitOpenError) -> None:
        """Stops consuming, for good in this process, and stays in the group holding the
        partitions: leaving would hand the same messages to the next replica, whose breaker
        would open in turn, until none was left. The batch is dropped unstored, so a restart
        (once the cause is dealt with: docs/operations.md, 'Circuit breaker') reads it again."""
        if self._circuit is None:
            log.error(
                "%s; consumption stopped: this worker keeps its partitions paused, so that "
                "no other replica is handed the same messages, until it is restarted",
                exc,
            )
        self._circuit = str(exc)
        # A stall noticed before no longer counts: /healthz failing would have the worker
        # restarted and its partitions handed on, which is what holding them is for.
        self._clear_stall()
        self._metrics.stalled_partitions.set(0)
        for topic, partition in exc.partitions:
            self._metrics.circuit_open.labels(topic, str(partition)).set(1)
        self._metrics.circuit_ratio.set(exc.ratio)
        self._status.set_problem("circuit", str(exc))
        if self._consumer_open:
            self._consumer.pause(self._consumer.assignment())

    def _resume(self, partitions: Iterable[Partition]) -> None:
        """Resumes fetching, unless the circuit breaker is open."""
        if self._circuit is None:
            self._consumer.resume(partitions)

    def _check_stall(self) -> None:
        """A partition with lag that stored nothing for ROI_STALL_SECONDS makes the worker
        stalled, until no partition is stuck and one has made progress since: /readyz fails,
        and every ROI_STALL_SECONDS it hands its partitions back to the group with fresh
        clients, which clears a wedged client and lets another replica try.

        /healthz fails too, so that an orchestrator restarts it, unless an outage it already
        reports explains the stall: a restart would not help (a worker cannot even start
        without its broker) and its backoff would delay the recovery."""
        if self._circuit is not None:  # paused on purpose, and handing them back would cascade
            self._metrics.stalled_partitions.set(0)
            return
        now = time.monotonic()
        stuck = self._stall.stuck(now)
        self._metrics.stalled_partitions.set(len(stuck))
        if not stuck:
            if self._stalled_at is not None and self._stall.last_progress > self._stalled_at:
                log.warning("storing again after the stall")
                self._clear_stall()
            return
        if self._stalled_at is None:
            self._stalled_at = now
        outage = self._degraded or ("the broker is unreachable" if self._broker_unreachable else "")
        reason = (
            "stalled: "
            + ", ".join(f"{topic}/{number}" for topic, number in sorted(stuck))
            + f" stored nothing for over {self._stall.limit:.0f} s (ROI_STALL_SECONDS) "
            f"with events waiting{f' ({outage})' if outage else ''}"
        )
        self._status.set_problem("stalled", reason)
        self._status.set_stalled(None if outage else reason)
        if now - self._stall.handed_back_at >= self._stall.limit:
            log.error("%s; handing the partitions back to the group", reason)
            self._hand_back()

    def _clear_stall(self) -> None:
        """The worker is no longer stalled: /readyz and /healthz stop saying so."""
        self._stalled_at = None
        self._status.set_problem("stalled", None)
        self._status.set_stalled(None)

    def _hand_back(self) -> None:
        """Leaves the group and joins it again with a new consumer and dead-letter producer.
        Nothing stored is lost: what was polled and not stored is polled again by the next
        owner, from the offsets in the database."""
        self._stall.hand_back(time.monotonic())  # first: on_revoked forgets the clocks
        if self._consumer_open:
            self.on_revoked(self._consumer.assignment())
        self._leave()
        self._dead_letters.reset()
        self._join(first=False)

    # ------------------------------------------------------------------ rebalances

    def on_revoked(self, partitions: set[Partition]) -> None:
        """RebalanceListener: forgets everything about partitions no longer this worker's."""
        # Only once: a hand back revokes before the consumer's leave() may do it again.
        revoked = partitions & self._assigned
        if not revoked:
            return
        self._metrics.rebalances.labels("revoked").inc()
        self._assigned -= revoked
        self._drop(revoked)
        self._stall.revoked(revoked)
        self._unpositioned -= revoked
        for p in revoked:
            self._held.pop(p, None)
        self._committer.forget(revoked)
        for p in revoked:
            self._start_offsets.pop(p, None)
        for topic, number in revoked:
            for gauge in (self._metrics.consumer_lag, self._metrics.partition_stored):
                with contextlib.suppress(KeyError):  # never measured yet
                    gauge.remove(topic, str(number))
        log.info("revoked %s", ", ".join(f"{t}/{n}" for t, n in sorted(revoked)))

    def _drop(self, partitions: set[Partition]) -> None:
        """Forgets the messages of `partitions` polled and not yet being stored."""
        self._pending = [m for m in self._pending if (m.topic, m.partition) not in partitions]
        self._pending_bytes = _size(self._pending)
        if self._batch is not None:
            self._batch = self._batch.without(partitions)
        if self._store.pending is not None and not self._store.busy:  # waiting for a retry
            self._store.pending = self._store.pending.without(partitions)

    def _hold_back(self, held: Iterable[Partition]) -> None:
        """Partitions whose batch waited on another transaction's locks (a frozen peer's, say)
        are read again from their stored offsets in HOLD_SECONDS, while the others go on: what
        was polled of them is dropped, and they wait paused to be positioned again."""
        partitions = set(held) & self._assigned
        self._drop(partitions)
        self._consumer.pause(partitions)
        self._unpositioned |= partitions
        due = time.monotonic() + HOLD_SECONDS
        self._held.update(dict.fromkeys(partitions, due))
        log.warning(
            "%s: a lock another transaction holds kept the batch waiting; storing the other "
            "partitions, and reading %s again in %.0f s",
            ", ".join(f"{topic}/{number}" for topic, number in sorted(partitions)),
            "it" if len(partitions) == 1 else "them",
            HOLD_SECONDS,
        )

    def _due_for_position(self) -> list[Partition]:
        """The partitions to seek to their stored offsets now: newly assigned, or held back
        for long enough."""
        now = time.monotonic()
        return sorted(p for p in self._unpositioned if self._held.get(p, now) <= now)

    def on_assigned(self, partitions: set[Partition]) -> None:
        """RebalanceListener: new partitions wait paused until the loop has positioned them."""
        if not partitions:
            return
        self._metrics.rebalances.labels("assigned").inc()
        # Called from inside a poll, which must not block: the seek to the stored offsets
        # happens in the loop (_position); until then the partitions stay paused.
        self._assigned |= partitions
        self._unpositioned |= partitions
        self._consumer.pause(partitions)
        self._stall.assigned(partitions, time.monotonic())


class _Progress:
    """An INFO line every PROGRESS_LOG_SECONDS while events flow."""

    def __init__(self) -> None:
        self._since = time.monotonic()
        self._counts = [0, 0, 0]

    def add(self, inserted: int, duplicates: int, dead_lettered: int) -> None:
        self._counts = [
            a + b for a, b in zip(self._counts, (inserted, duplicates, dead_lettered), strict=True)
        ]

    def maybe_log(self) -> None:
        elapsed = time.monotonic() - self._since
        if elapsed < PROGRESS_LOG_SECONDS:
            return
        inserted, duplicates, dead_lettered = self._counts
        if inserted or duplicates or dead_lettered:
            log.info(
                "last %.0f s: %d stored, %d duplicates, %d dead-lettered (%.0f events/s)",
                elapsed,
                inserted,
                duplicates,
                dead_lettered,
                (inserted + duplicates + dead_lettered) / elapsed,
            )
        self._since = time.monotonic()
        self._counts = [0, 0, 0]


def _size(messages: list[Message]) -> int:
    """Bytes of the keys and values: what ROI_BATCH_MAX_BYTES bounds."""
    return sum(len(m.value or b"") + len(m.key or b"") for m in messages)
