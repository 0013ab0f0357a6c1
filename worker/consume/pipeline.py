"""The one place that wires the stages: poll -> decode -> validate -> write -> commit.

Each batch goes through these steps, in this order (docs/architecture.md):
1. poll until ROI_BATCH_MAX_MESSAGES messages or ROI_BATCH_MAX_SECONDS;
2. decode and validate each message; the invalid ones are published to the dead-letter topic
   (the circuit breaker counts them) and acknowledged;
3. one database transaction stores the new events, increments the summaries and saves the next
   offset of each partition; conflicting duplicates and rows the database refuses are
   dead-lettered, and acknowledged, just before it commits;
4. only then are the offsets committed to Kafka.

Step 3 runs on a thread of its own (consume/background_store.py) while the loop polls, decodes
and validates the next batch; batches are still stored one at a time, in the order polled.

The database, not Kafka, says where each partition resumes: a newly assigned partition stays
paused until it has been seeked to the offset stored in PostgreSQL. When PostgreSQL or the
dead-letter topic is unavailable the worker pauses every partition, keeps polling (so it stays
in the group), retries the same batch with backoff up to 5 s and reports not ready. A
partition with events waiting that stores nothing for ROI_STALL_SECONDS makes the worker
stalled (worker/consume/stall.py): it fails /readyz (and /healthz, unless an outage explains it) and
hands its partitions back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, ProcessCollector

from worker.consume.background_store import BackgroundStore
from worker.consume.batch import Batch, StoredAround, prepare, store_around_locks
from worker.consume.circuit_breaker import CircuitBreaker
from worker.consume.commit import KafkaCommitter
from worker.consume.deadletter import DeadLetter, DeadLetterPublisher
from worker.consume.health import StatusServer, WorkerStatus
from worker.consume.stall import StallWatch
from worker.consume.write import BatchWriter, WriteResult
from worker.db.connect import WORKER_SESSION, connect
from worker.db.migrate import load_migrations, migration_status
from worker.errors import (
    BrokerUnavailableError,
    CircuitOpenError,
    DatabaseUnavailableError,
    FatalError,
    InvalidReason,
    RetryableError,
)
from worker.kafka.client import RecordReader, new_consumer
from worker.kafka.topics import ensure_topics
from worker.metrics import PatternCollector, WorkerMetrics
from worker.ops.retention_schedule import RetentionSchedule
from worker.settings import Settings
from worker.types import Message, Outcome

log = logging.getLogger(__name__)

# Short, so that storing resumes within seconds of the database or broker coming back.
MAX_BACKOFF_SECONDS: Final = 5.0
FIRST_BACKOFF_SECONDS: Final = 0.5
POLL_SLICE_SECONDS: Final = 1.0  # the longest the loop blocks in poll(): how fast it sees stop
LAG_REFRESH_SECONDS: Final = 5.0
LAG_TIMEOUT_MS: Final = 2000
DATABASE_CHECK_SECONDS: Final = 5.0
DEAD_LETTER_TIMEOUT_SECONDS: Final = 5.0
KAFKA_TIMEOUT_MS: Final = 5000  # offset lookups
PROGRESS_LOG_SECONDS: Final = 30.0
STOP_WAIT_SECONDS: Final = 4.0  # for the batch in flight at stop (process.py allows 9 s in all)
ABANDON_WAIT_SECONDS: Final = 1.0  # for a cancelled store to roll back before its connection closes
STORE_CHECK_SECONDS: Final = 0.05  # the longest poll while a batch is being stored
HOLD_SECONDS: Final = (
    5.0  # a partition whose batch waited on another's locks, before it is read again
)
RECONNECT_BACKOFF_MAX_MS: Final = 1000
# How long making a Kafka client waits for the broker: at start-up, kafka-python's 30 s (a worker
# may start just before the broker); later (a rejoin, a new dead-letter producer) the loop must
# not block that long, as it retries anyway.
START_TIMEOUT_MS: Final = 30_000
REJOIN_TIMEOUT_MS: Final = 5000


class Pipeline:
    """A consumer-group member that stores events from ROI_TOPIC until `stop()` is called."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self._settings = settings
        self._registry = registry or CollectorRegistry()
        ProcessCollector(registry=self._registry)  # process_resident_memory_bytes, CPU, fds
        self._metrics = WorkerMetrics(self._registry)
        self._status = WorkerStatus()
        self._breaker = CircuitBreaker(settings.dlq_max_ratio)
        self._stop = threading.Event()
        self._pending: list[Message] = []
        self._pending_bytes = 0
        self._stall: StallWatch[TopicPartition] = StallWatch(settings.stall_seconds)
        self._stalled_at: float | None = None  # monotonic time the worker declared a stall
        self._broker_unreachable = False  # the broker's end offsets could not be read
        self._batch: Batch | None = None  # prepared, waiting for the store in flight
        self._writing: Batch | None = None  # being stored, or to store again after a failure
        self._store_thread: BackgroundStore[StoredAround] = BackgroundStore("roi-store")
        self._assigned: set[TopicPartition] = set()  # and not revoked since
        self._held: dict[TopicPartition, float] = {}  # held back until (monotonic time)
        self._unpositioned: set[TopicPartition] = set()
        self._start_offsets: dict[TopicPartition, int] = {}  # where unstored partitions start
        self._degraded: str | None = None
        self._circuit: str | None = None  # why the circuit breaker opened
        self._backoff = 0.0
        self._consumer_open = False
        self._conn: psycopg.Connection[Any] | None = None
        self._writer: BatchWriter | None = None
        self._schema_checked = False
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
        """Consumes until stopped. Raises FatalError (with an operator-ready message) or
        BrokerUnavailableError when Kafka cannot be reached at start-up."""
        settings = self._settings
        ensure_topics(
            settings, [settings.topic, settings.dead_letter_topic], create=settings.create_topics
        )
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
            cleanup.callback(self._close_database)
            self._dead_letters = DeadLetterPublisher(
                self._make_producer,
                settings.dead_letter_topic,
                timeout=DEAD_LETTER_TIMEOUT_SECONDS,
            )
            cleanup.callback(self._dead_letters.close)
            cleanup.callback(self._close_consumer)  # leaves the group
            if settings.retention_days is not None:
                RetentionSchedule(settings, self._stop).start()
            self._open_consumer()
            cleanup.callback(self._mark_stopped)
            cleanup.callback(self._abandon_store)  # first: the store uses the producer too
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

    def _open_consumer(self, *, rejoin: bool = False) -> None:
        """Makes the group consumer and joins the group, unless it is open already. Raises
        BrokerUnavailableError when the broker does not answer in time: at start-up, within
        kafka-python's 30 s (a worker may start just before its broker); when it rejoins, 5 s,
        as the loop retries anyway and must not block for long."""
        if self._consumer_open:
            return
        settings = self._settings
        try:
            consumer = new_consumer(
                settings,
                group_id=settings.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                allow_auto_create_topics=False,
                max_poll_records=settings.batch_max_messages,
                **settings.consumer_fetch_config(),
                # Incremental rebalances: a joining or leaving replica moves only the
                # partitions that change owner; the others keep flowing.
                partition_assignment_strategy=(CooperativeStickyAssignor,),
                session_timeout_ms=settings.kafka_session_timeout_ms,
                heartbeat_interval_ms=settings.kafka_session_timeout_ms // 15,
                # Back within a second or two of the broker's return, not kafka-python's 30 s.
                reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                bootstrap_timeout_ms=REJOIN_TIMEOUT_MS if rejoin else START_TIMEOUT_MS,
            )
        except KafkaError as exc:
            raise BrokerUnavailableError(f"Kafka: {exc}") from exc
        try:
            if not rejoin:
                # Topic metadata first: a member that joins without it is assigned nothing,
                # and gets its partitions only a rebalance later (about a second). Its wait
                # has no bound of its own, so a rejoin takes that second instead.
                consumer.partitions_for_topic(settings.topic)
            consumer.subscribe([settings.topic], listener=_Rebalance(self))
        except KafkaError as exc:
            _close_quietly(consumer)
            raise BrokerUnavailableError(f"Kafka: {exc}") from exc
        self._consumer, self._consumer_open = consumer, True
        self._reader = RecordReader(consumer)
        self._committer = KafkaCommitter(consumer)

    def _close_consumer(self) -> None:
        """Leaves the group: what this worker owned is assigned to the others."""
        if self._consumer_open:
            self._consumer_open = False
            _close_quietly(self._consumer)

    def _make_producer(self) -> KafkaProducer:
        """The dead-letter producer (DeadLetterPublisher makes it again after a timeout)."""
        return KafkaProducer(
            **self._settings.kafka_config(),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_block_ms=5000,
            request_timeout_ms=int(DEAD_LETTER_TIMEOUT_SECONDS * 1000),
            delivery_timeout_ms=int(DEAD_LETTER_TIMEOUT_SECONDS * 1000 * 3),
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            bootstrap_timeout_ms=REJOIN_TIMEOUT_MS,
        )

    # ------------------------------------------------------------------ the loop

    def _step(self) -> None:
        self._status.tick()
        try:
            self._open_consumer(rejoin=True)  # if handed back and not rejoined since
            if not self._committer.commit():  # a commit that failed after the last batch
                self._metrics.kafka_errors.inc()
            self._finish_store(timeout=0)
            if self._due_for_position():
                if not self._wait_for_store():  # positioning reads offsets over its connection
                    return  # stopping: _finish_on_stop takes it from here
                self._finish_store()
                self._position()
            if self._writing is not None and not self._store_thread.busy:
                # Again, after a failure and _degrade's backoff: only what is still ours.
                self._writing = self._owned(self._writing)
                if self._writing is not None:
                    self._start_store(self._writing)
            if self._batch is None:
                self._collect()
            if self._batch is not None and not self._store_prepared():
                return
            if not self._store_thread.busy:
                self._check_database()
                if self._degraded:
                    self._recover()
            self._refresh_lag()
            self._check_stall()
            self._progress.maybe_log()
        except KafkaError as exc:  # poll() and seek() surface few errors; back off on any
            self._degrade(BrokerUnavailableError(f"Kafka: {type(exc).__name__}: {exc}"))
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
            self._writing = batch
            self._start_store(batch)
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
            if self._store_thread.busy:
                # Commit the stored batch's offsets to Kafka soon after it is stored.
                self._finish_store(timeout=0)
                remaining = min(remaining, STORE_CHECK_SECONDS)
            polled = len(self._pending)
            self._poll(min(remaining, POLL_SLICE_SECONDS), limit - len(self._pending))
            self._pending_bytes += _size(self._pending[polled:])
        # Offsets read past without a message (transaction markers) are stored too.
        self._pending += self._reader.skipped()
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
        # The reader turns records the client cannot decode into dead letters to be
        # (worker/kafka/client.py).
        polled = self._reader.poll(timeout_ms=max(1, int(seconds * 1000)), max_records=max_records)
        self._status.tick()
        self._pending.extend(polled)

    def _start_store(self, batch: Batch) -> None:
        writer, dead_letters = self._database(), self._dead_letters

        def run() -> StoredAround:
            around = store_around_locks(batch, writer, dead_letters)
            if around.batch is not None:
                # Here, not in the loop: /metrics counts a batch as soon as it is stored.
                stored = around.stored
                self._record(around.batch, stored.result, stored.letters, time.time())
            return around

        self._store_thread.start(run)

    def _finish_store(self, timeout: float | None = None) -> None:
        """Takes in the outcome of the store in flight, waiting up to `timeout` seconds (for
        ever with None) for it. Raises what the store raised; the batch is then stored again
        by a later step."""
        finished = self._store_thread.wait(timeout)
        if finished is None:
            return
        self._writing = None  # stored: it must not be stored again
        self._database_seen = time.monotonic()
        around = finished.value
        if around.held:
            self._hold_back(around.held)
        batch, result = around.batch, around.stored.result
        if batch is None:
            return
        self._progress.add(len(result.inserted), len(result.duplicates), len(around.stored.letters))
        # A partition revoked while its batch was in flight is no longer ours to commit.
        assigned = self._consumer.assignment()
        stored = {
            tp: offset
            for (topic, partition), offset in batch.next_offsets.items()
            if (tp := TopicPartition(topic, partition)) in assigned
        }
        self._committer.stored(stored)
        if not self._committer.commit():
            self._metrics.kafka_errors.inc()
        now = time.monotonic()
        for tp, offset in stored.items():
            if self._stall.stored(tp, offset, now):
                self._mark_stored(tp, time.time())
            end = self._consumer.highwater(tp)  # from the last fetch: no round trip
            if end is not None:
                self._set_lag(tp, end - offset)

    def _wait_for_store(self) -> bool:
        """Waits for the store in flight to end; False if the worker is stopping first.

        A store that takes long (a lock wait) must not stop the loop from polling: a
        rebalance of the group waits for every member to poll. After a second, it polls with
        every partition paused until the store ends."""
        if self._store_thread.settled(POLL_SLICE_SECONDS):
            return True
        log.info("the batch being stored takes long; polling with the partitions paused")
        paused = set(self._consumer.assignment()) - set(self._consumer.paused())
        self._consumer.pause(*paused)
        try:
            while not self._stop.is_set() and not self._store_thread.settled(0):
                # Nothing is fetched while paused; the poll runs the group protocol.
                self._poll(POLL_SLICE_SECONDS, self._settings.batch_max_messages)
                self._refresh_lag()
                self._check_stall()
        finally:
            if not self._degraded:
                still = paused & set(self._consumer.assignment())
                self._resume(still - self._unpositioned)
        return self._store_thread.settled(0)

    def _finish_on_stop(self) -> None:
        try:
            if self._store_thread.busy and not self._store_thread.done:
                log.info("stopping: waiting for the batch being stored")
            self._finish_store(timeout=STOP_WAIT_SECONDS)
        except RetryableError as exc:
            log.warning("the last batch was not stored (%s); it will be consumed again", exc)
        if self._store_thread.busy:
            log.warning("the last batch was still being stored after %.0f s", STOP_WAIT_SECONDS)
        if self._batch or self._pending or self._writing:
            log.info("stopping: the events not yet stored are left for re-delivery")

    def _abandon_store(self) -> None:
        """On the way out, before the producer and the connection close: a store still
        running has its statement cancelled (its transaction rolls back; the batch is delivered
        again) and a moment to end. A connection it still uses is not closed under it: the
        process's exit ends both."""
        if not self._store_thread.busy:
            return
        if self._conn is not None and not self._store_thread.done:
            with contextlib.suppress(psycopg.Error):
                self._conn.cancel_safe(timeout=ABANDON_WAIT_SECONDS)
        with contextlib.suppress(Exception):  # it is being abandoned: its outcome is moot
            self._store_thread.wait(ABANDON_WAIT_SECONDS)
        if self._store_thread.busy:
            log.warning("stopping with a batch still being stored; it will be consumed again")
            self._conn, self._writer = None, None

    def _owned(self, batch: Batch) -> Batch | None:
        """The batch without the partitions revoked since it was polled."""
        polled = {TopicPartition(topic, partition) for topic, partition in batch.next_offsets}
        return batch.without(polled - self._consumer.assignment())

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
        for item in result.inserted:
            metrics.event_delay.observe(max(0.0, stored_at - item.event.executed_at.timestamp()))
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
        writer = self._database()
        positions = writer.load_positions(sorted({tp.topic for tp in partitions}))
        stored = {key: offset for key, (offset, _) in positions.items()}
        ends = self._consumer.end_offsets(partitions, timeout_ms=KAFKA_TIMEOUT_MS)
        beyond = [
            f"{tp.topic}/{tp.partition}: stored {stored[tp]}, end {ends[tp]}"
            for tp in partitions
            if stored.get(tp, 0) > ends.get(tp, 0)
        ]
        if beyond:
            raise FatalError(
                f"stored offsets are beyond the end of the topic ({'; '.join(beyond)}): was it "
                "recreated? See docs/operations.md, 'Stored offsets beyond the end'"
            )
        starts = self._consumer.beginning_offsets(partitions, timeout_ms=KAFKA_TIMEOUT_MS)
        for tp in partitions:
            if tp in stored and stored[tp] < starts[tp]:
                self._metrics.kafka_errors.inc()
                log.error(
                    "%s/%d: offsets %d to %d were deleted by the topic's retention before they "
                    "were stored; they are lost to this database (docs/operations.md, "
                    "'Events deleted before they were stored')",
                    tp.topic,
                    tp.partition,
                    stored[tp],
                    starts[tp] - 1,
                )
        fresh = [tp for tp in partitions if tp not in stored]
        if fresh:
            self._consumer.seek_to_beginning(*fresh)
            self._start_offsets.update({tp: starts[tp] for tp in fresh})
        for tp in partitions:
            if tp in stored:
                self._consumer.seek(tp, stored[tp])
                self._committer.stored({tp: stored[tp]})  # Kafka catches up if it was behind
        self._reader.seeked({tp: stored.get(tp, starts[tp]) for tp in partitions})
        now = time.time()
        for tp in partitions:
            saved = positions.get(tp)
            self._mark_stored(tp, saved[1].timestamp() if saved else now)
        self._unpositioned.difference_update(partitions)
        for tp in partitions:
            self._held.pop(tp, None)
        if not self._degraded:
            self._resume(partitions)
        self._lag_due = 0.0
        log.info(
            "assigned %s",
            ", ".join(f"{tp.topic}/{tp.partition}@{stored.get(tp, 'start')}" for tp in partitions),
        )

    # ------------------------------------------------------------------ failures

    def _degrade(self, exc: RetryableError) -> None:
        if isinstance(exc, DatabaseUnavailableError):
            self._metrics.db_errors.inc()
            self._close_database()
        else:
            self._metrics.kafka_errors.inc()
        self._backoff = min(max(self._backoff * 2, FIRST_BACKOFF_SECONDS), MAX_BACKOFF_SECONDS)
        if self._degraded is None:
            log.warning("%s; pausing consumption and retrying", exc)
        else:
            log.info("still failing (%s); next retry in %.1f s", exc, self._backoff)
        self._degraded = exc.outage
        self._status.set_ready(False, f"{exc.outage} (the worker's log says why)")
        if self._consumer_open:
            self._consumer.pause(*self._consumer.assignment())
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
            except (KafkaError, RetryableError) as error:
                self._metrics.kafka_errors.inc()
                log.debug("poll failed while paused: %s", error)
                self._stop.wait(wait)  # a poll that fails at once must not spin

    def _recover(self) -> None:
        log.warning("recovered; resuming consumption")
        self._degraded = None
        self._backoff = 0.0
        self._resume(set(self._consumer.assignment()) - self._unpositioned)
        self._mark_ready()

    def _mark_stopped(self) -> None:
        self._status.set_ready(False, "stopped")

    def _mark_ready(self) -> None:
        self._status.set_ready(True)

    def _database(self) -> BatchWriter:
        if self._writer is None:
            url = self._settings.database_url.get_secret_value()
            if not self._schema_checked:
                self._check_schema(url)
            self._conn = connect(url, autocommit=True, **WORKER_SESSION)
            self._writer = BatchWriter(self._conn, self._settings.group_id)
            if not self._degraded:
                self._mark_ready()
        return self._writer

    def _check_schema(self, url: str) -> None:
        migrations = load_migrations()
        pending = [s.migration.name for s in migration_status(url, migrations) if not s.applied_at]
        if pending:
            raise FatalError(
                f"the database lacks migration {', '.join(pending)}; run `roi-worker migrate`"
            )
        self._schema_checked = True

    def _close_database(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._writer = None

    def _check_database(self) -> None:
        """While idle, pings PostgreSQL now and then, so that readiness tells the truth before
        the next batch finds out."""
        if time.monotonic() - self._database_seen < DATABASE_CHECK_SECONDS:
            return
        self._database().ping()
        self._database_seen = time.monotonic()

    def _refresh_lag(self) -> None:
        """Lag from the broker's end offsets and the offsets stored in the database (known here:
        this worker stores its partitions). Refreshed during outages of either; when it cannot
        be, the last values stay and roi_worker_consumer_lag_stale says so."""
        if time.monotonic() < self._lag_due:
            return
        self._lag_due = time.monotonic() + LAG_REFRESH_SECONDS
        assigned = list(self._consumer.assignment())
        if not assigned:
            self._metrics.consumer_lag_stale.set(0)
            return
        try:
            ends = self._consumer.end_offsets(assigned, timeout_ms=LAG_TIMEOUT_MS)
        except KafkaError as exc:
            self._metrics.kafka_errors.inc()
            self._metrics.consumer_lag_stale.set(1)
            self._broker_unreachable = True
            self._status.set_problem(
                "kafka", f"Kafka: cannot read end offsets ({type(exc).__name__})"
            )
            log.warning("cannot read end offsets for the lag metric: %s", exc)
            return
        self._broker_unreachable = False
        self._status.set_problem("kafka", None)
        unknown = False
        now = time.monotonic()
        for tp, end in ends.items():
            base = self._committer.stored_offset(tp)
            if base is None:
                base = self._start_offsets.get(tp)
            if base is None or tp in self._unpositioned:  # assigned while the database was down
                unknown = True
                continue
            self._set_lag(tp, end - base)
            self._stall.lag(tp, end - base, now)
        self._metrics.consumer_lag_stale.set(1 if unknown else 0)

    def _set_lag(self, tp: TopicPartition, lag: int) -> None:
        self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, lag))

    # ------------------------------------------------------------------ stalls

    def _mark_stored(self, tp: TopicPartition, when: float) -> None:
        self._metrics.partition_stored.labels(tp.topic, str(tp.partition)).set(when)

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
        for topic, partition in exc.partitions:
            self._metrics.circuit_open.labels(topic, str(partition)).set(1)
        self._metrics.circuit_ratio.set(exc.ratio)
        self._status.set_problem("circuit", str(exc))
        if self._consumer_open:
            self._consumer.pause(*self._consumer.assignment())

    def _resume(self, partitions: Iterable[TopicPartition]) -> None:
        """Resumes fetching, unless the circuit breaker is open."""
        if self._circuit is None:
            self._consumer.resume(*partitions)

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
                self._stalled_at = None
                self._status.set_problem("stalled", None)
                self._status.set_stalled(None)
            return
        if self._stalled_at is None:
            self._stalled_at = now
        outage = self._degraded or ("the broker is unreachable" if self._broker_unreachable else "")
        reason = (
            "stalled: "
            + ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(stuck))
            + f" stored nothing for over {self._stall.limit:.0f} s (ROI_STALL_SECONDS) "
            f"with events waiting{f' ({outage})' if outage else ''}"
        )
        self._status.set_problem("stalled", reason)
        self._status.set_stalled(None if outage else reason)
        if now - self._stall.handed_back_at >= self._stall.limit:
            log.error("%s; handing the partitions back to the group", reason)
            self._hand_back()

    def _hand_back(self) -> None:
        """Leaves the group and joins it again with a new consumer and dead-letter producer.
        Nothing stored is lost: what was polled and not stored is polled again by the next
        owner, from the offsets in the database."""
        self._stall.hand_back(time.monotonic())  # first: on_revoked forgets the clocks
        if self._consumer_open:
            self.on_revoked(self._consumer.assignment())
        self._close_consumer()
        self._dead_letters.reset()
        self._open_consumer(rejoin=True)

    # ------------------------------------------------------------------ rebalances

    def on_revoked(self, partitions: Iterable[TopicPartition]) -> None:
        # Only once: a hand back revokes before the consumer's close() does it again.
        revoked = set(partitions) & self._assigned
        if not revoked:
            return
        self._metrics.rebalances.labels("revoked").inc()
        self._assigned -= revoked
        self._drop(revoked)
        self._stall.revoked(revoked)
        self._reader.forget(revoked)
        self._unpositioned -= revoked
        for tp in revoked:
            self._held.pop(tp, None)
        self._committer.forget(revoked)
        for tp in revoked:
            self._start_offsets.pop(tp, None)
        for tp in revoked:
            for gauge in (self._metrics.consumer_lag, self._metrics.partition_stored):
                with contextlib.suppress(KeyError):  # never measured yet
                    gauge.remove(tp.topic, str(tp.partition))
        log.info("revoked %s", ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(revoked)))

    def _drop(self, partitions: set[TopicPartition]) -> None:
        """Forgets the messages of `partitions` polled and not yet being stored."""
        self._pending = [
            m for m in self._pending if TopicPartition(m.topic, m.partition) not in partitions
        ]
        self._pending_bytes = _size(self._pending)
        if self._batch is not None:
            self._batch = self._batch.without(partitions)
        if self._writing is not None and not self._store_thread.busy:  # waiting for a retry
            self._writing = self._writing.without(partitions)

    def _hold_back(self, held: Iterable[tuple[str, int]]) -> None:
        """Partitions whose batch waited on another transaction's locks (a frozen peer's, say)
        are read again from their stored offsets in HOLD_SECONDS, while the others go on: what
        was polled of them is dropped, and they wait paused to be positioned again."""
        partitions = {TopicPartition(*key) for key in held} & self._assigned
        self._drop(partitions)
        self._consumer.pause(*partitions)
        self._unpositioned |= partitions
        due = time.monotonic() + HOLD_SECONDS
        self._held.update(dict.fromkeys(partitions, due))
        log.warning(
            "%s: a lock another transaction holds kept the batch waiting; storing the other "
            "partitions, and reading %s again in %.0f s",
            ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(partitions)),
            "it" if len(partitions) == 1 else "them",
            HOLD_SECONDS,
        )

    def _due_for_position(self) -> list[TopicPartition]:
        """The partitions to seek to their stored offsets now: newly assigned, or held back
        for long enough."""
        now = time.monotonic()
        return sorted(tp for tp in self._unpositioned if self._held.get(tp, now) <= now)

    def on_assigned(self, partitions: Iterable[TopicPartition]) -> None:
        assigned = set(partitions)
        if not assigned:
            return
        self._metrics.rebalances.labels("assigned").inc()
        # Runs on kafka-python's IO thread, which must not block: the seek to the stored
        # offsets happens in the loop (_position); until then the partitions stay paused.
        self._assigned |= assigned
        self._unpositioned |= assigned
        self._consumer.pause(*assigned)
        self._stall.assigned(assigned, time.monotonic())


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._pipeline.on_revoked(revoked)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._pipeline.on_assigned(assigned)


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


def _close_quietly(consumer: KafkaConsumer) -> None:
    try:
        consumer.close(autocommit=False, timeout_ms=3000)
    except Exception as exc:  # a wedged client may fail to close, too
        log.warning("closing the Kafka consumer failed: %s", exc)


def _size(messages: list[Message]) -> int:
    """Bytes of the keys and values: what ROI_BATCH_MAX_BYTES bounds."""
    return sum(len(m.value or b"") + len(m.key or b"") for m in messages)
