"""The ratings publisher: one replica at a time publishes the recorded rating transitions.

Runs beside consuming in every `roi-worker run` (a chore: worker.cli.run starts it, the
pipeline's stop ends it), on a thread and a PostgreSQL session of its own. In a loop:
1. without the lock, try to take the publisher's session advisory lock
   (worker/db/ratings.py, every LOCK_RETRY_SECONDS). Only its holder goes on; the lock is
   released when its session ends, however the process ends (SIGKILL included), so another
   replica takes over at its next try;
2. the holder sweeps at start and every SWEEP_SECONDS (worker.consume.ratings.sweep: states
   that time alone moved, patterns with no state yet);
3. it sends the unsent transitions, in pattern_id and sequence order, to ROI_RATINGS_TOPIC
   (key = pattern_id, acks=all, idempotent producer: one pattern's events stay in order), waits
   for the acknowledgements, then marks the acknowledged ones sent. Within a pattern only the
   acknowledged prefix is marked, so a failed send is re-sent with the ones after it;
4. it waits for the next NOTIFY (a batch recorded transitions) or PUBLISH_POLL_SECONDS.

A crash between 3's acknowledgement and its mark sends the same (pattern_id, sequence) again
later; nothing recorded is ever skipped. Failures (database, broker, a missing topic) are
logged and tried again (after RETRY_SECONDS; TOPIC_RETRY_SECONDS for a missing topic);
consuming is never held up by them, and the transitions wait in the database
(roi_rating_transitions_unsent says how many).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from prometheus_client import CollectorRegistry

from ..db import connect as db
from ..db import ratings
from ..errors import (
    BrokerUnavailableError,
    ConfigurationError,
    FatalError,
    LockWaitError,
    RoiWorkerError,
)
from ..kafka.producers import Delivery, Producer, open_producer
from ..kafka.topics import ensure_topics
from ..metrics import RatingsPublisherMetrics
from ..roi.rating_state import event_of
from ..settings import Settings
from .ratings import sweep, transition_of

log = logging.getLogger(__name__)

LOCK_RETRY_SECONDS: Final = 2.0  # how soon a replica takes over from a dead publisher
PUBLISH_POLL_SECONDS: Final = 1.0  # the holder's longest wait for a NOTIFY
SWEEP_SECONDS: Final = 60.0
RETRY_SECONDS: Final = 5.0  # after a failure of the database or the broker
TOPIC_RETRY_SECONDS: Final = 30.0  # while ROI_RATINGS_TOPIC does not exist
SEND_BATCH: Final = 500  # transitions sent before waiting for their acknowledgements
ACK_TIMEOUT_SECONDS: Final = 30.0
CLOSE_TIMEOUT_SECONDS: Final = 2.0


class RatingsPublisher:
    """Publishes rating transitions while this replica holds the lock, until `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        stop: threading.Event,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._settings = settings
        self._url = settings.database_url.get_secret_value()
        self._topic = settings.ratings_topic
        self._stop = stop
        self._metrics = RatingsPublisherMetrics(registry or CollectorRegistry())
        self._producer: Producer | None = None
        self._topic_checked = False
        self._sweep_due = 0.0  # monotonic times
        self._publish_due = 0.0
        self._thread = threading.Thread(target=self._run, name="roi-ratings", daemon=True)

    def start(self) -> None:
        """Starts the publisher's thread; returns at once (a pipeline chore)."""
        log.info("ratings: transitions go to %s from whichever replica holds the lock", self._topic)
        self._thread.start()

    def close(self) -> None:
        """Closes the producer, if one was opened (the thread does so itself on its way out)."""
        self._close_producer()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._session() as conn:
                    self._serve(conn)
            except RoiWorkerError as exc:
                log.warning("ratings publisher: %s; trying again in %g s", exc, RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)
            except Exception:  # a bug must not end publishing for good: log it, go on
                log.exception("ratings publisher failed; trying again in %g s", RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)
            finally:
                self._metrics.active.set(0)
                self._close_producer()

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        """The publisher's own session: closing it releases the lock."""
        with (
            db.errors(),
            db.connect(
                self._url,
                autocommit=True,
                application_name="roi-worker ratings",
                **db.WORKER_SESSION,
            ) as conn,
        ):
            yield conn

    def _serve(self, conn: psycopg.Connection[Any]) -> None:
        ratings.listen(conn)
        holding = False
        while not self._stop.is_set():
            if not holding:
                holding = ratings.try_publisher_lock(conn)
                if holding:
                    log.info("ratings: this replica holds the lock and publishes")
                    self._sweep_due = 0.0
                self._metrics.active.set(1 if holding else 0)
            if holding:
                self._hold(conn)
            self._count_unsent(conn)
            self._wait(conn, PUBLISH_POLL_SECONDS if holding else LOCK_RETRY_SECONDS)

    def _hold(self, conn: psycopg.Connection[Any]) -> None:
        """The lock holder's turn: sweep when due, then publish everything unsent. A sweep
        held up by locks, or a broker that does not take the events, is tried again later
        without letting go of the lock; a database failure ends the session (`_run`)."""
        now = time.monotonic()
        if now >= self._sweep_due:
            self._sweep_due = now + SWEEP_SECONDS
            try:
                with db.errors():
                    recorded = sweep(conn, self._settings.min_executions)
            except LockWaitError as exc:
                log.warning("ratings: the sweep waited on locks (%s); trying again soon", exc)
                self._sweep_due = now + RETRY_SECONDS
            else:
                if recorded:
                    log.info("ratings: the sweep recorded %d transitions", recorded)
        if now < self._publish_due:
            return
        try:
            while not self._stop.is_set() and self.publish_once(conn) == SEND_BATCH:
                pass  # a full batch: more may wait
        except (BrokerUnavailableError, ConfigurationError) as exc:
            wait = TOPIC_RETRY_SECONDS if isinstance(exc, ConfigurationError) else RETRY_SECONDS
            log.warning(
                "ratings: cannot publish to %s: %s; trying again in %g s", self._topic, exc, wait
            )
            self._publish_due = now + wait
            self._close_producer()

    def publish_once(self, conn: psycopg.Connection[Any]) -> int:
        """Sends up to SEND_BATCH unsent transitions, waits for their acknowledgements and
        marks the acknowledged ones sent; returns how many were read. Raises
        BrokerUnavailableError (some were not acknowledged: they are sent again next time),
        ConfigurationError (ROI_RATINGS_TOPIC does not exist), FatalError (Kafka refused for
        good) or DatabaseUnavailableError."""
        rows = ratings.unsent(conn, SEND_BATCH)
        if not rows:
            return 0
        producer = self._connected_producer()
        sent: list[tuple[ratings.TransitionRow, Delivery]] = []
        for row in rows:
            value = event_of(transition_of(row)).model_dump_json().encode()
            sent.append((row, producer.send(self._topic, value, key=row.pattern_id.encode())))
        with contextlib.suppress(RoiWorkerError):  # each Delivery says what became of it
            producer.flush(ACK_TIMEOUT_SECONDS)
        acknowledged: list[tuple[str, int]] = []
        failed: set[str] = set()
        first_error: BrokerUnavailableError | FatalError | None = None
        for row, delivery in sent:
            if row.pattern_id not in failed and delivery.acknowledged:
                acknowledged.append((row.pattern_id, row.sequence))
                continue
            failed.add(row.pattern_id)  # the rest of this pattern waits for the next try
            first_error = first_error or delivery.error
        with db.errors():
            ratings.mark_sent(conn, acknowledged)
        self._metrics.published.inc(len(acknowledged))
        if failed:
            raise BrokerUnavailableError(
                f"the broker did not acknowledge {len(rows) - len(acknowledged)} rating "
                f"transitions within {ACK_TIMEOUT_SECONDS:g} s ({first_error or 'no answer'})"
            )
        return len(rows)

    def _connected_producer(self) -> Producer:
        if not self._topic_checked:
            ensure_topics(self._settings, [self._topic], create=self._settings.create_topics)
            self._topic_checked = True
        if self._producer is None:
            self._producer = open_producer(
                self._settings,
                "roi-worker-ratings",
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_block_ms=int(ACK_TIMEOUT_SECONDS * 1000),
            )
        return self._producer

    def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        self._topic_checked = False
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(CLOSE_TIMEOUT_SECONDS)

    def _count_unsent(self, conn: psycopg.Connection[Any]) -> None:
        count, oldest = ratings.count_unsent(conn)
        self._metrics.unsent.set(count)
        age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        self._metrics.oldest_unsent.set(max(0.0, age))

    def _wait(self, conn: psycopg.Connection[Any], seconds: float) -> None:
        """Until a NOTIFY on ratings.CHANNEL, `seconds`, or soon after stop."""
        for _ in conn.notifies(timeout=seconds, stop_after=1):
            pass
        # Several notifies may be queued; draining them now saves empty rounds.
        for _ in conn.notifies(timeout=0):
            pass
