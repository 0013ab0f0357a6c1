"""What the API talks to: a PostgreSQL connection pool and a lazily connected Kafka producer.

Both turn their failures into RetryableErrors (DatabaseUnavailableError, BrokerUnavailableError),
which the app answers with 503: the API starts and serves what it can while either is down.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ..contract.event import ExecutionEvent
from ..errors import BrokerUnavailableError, DatabaseUnavailableError
from ..producer import ExecutionEventProducer
from ..settings import Settings

log = logging.getLogger(__name__)

POOL_WAIT_SECONDS: Final = 5.0  # a request waits this long for a connection, then 503
# Fail fast rather than hold a request thread: no read takes longer on a healthy database.
API_SESSION: Final[dict[str, Any]] = {
    "autocommit": True,
    "connect_timeout": 3,
    "application_name": "roi-worker-api",
    "options": "-c statement_timeout=15s",
}


@dataclass(frozen=True)
class PoolUse:
    """The connections of the API's pool: open (size), idle among them (available), requests
    waiting for one (waiting), and the most it opens (max_size, ROI_API_DB_POOL_SIZE)."""

    size: int
    available: int
    waiting: int
    max_size: int


class Database:
    """A pool of PostgreSQL connections (autocommit; transactions are explicit)."""

    def __init__(self, url: str, size: int) -> None:
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=size,
            open=False,
            timeout=POOL_WAIT_SECONDS,
            kwargs=API_SESSION,
            # One round trip per request, so a connection broken by a database restart is
            # replaced instead of failing the request.
            check=ConnectionPool.check_connection,
            name="roi-worker-api",
        )

    def open(self) -> None:
        """Starts connecting in the background; never waits for (or fails on) the database."""
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close(timeout=5)

    def pool_use(self) -> PoolUse:
        """The pool's connections now, as /metrics shows them (worker.api.metrics)."""
        stats = self._pool.get_stats()
        return PoolUse(
            size=stats["pool_size"],
            available=stats["pool_available"],
            waiting=stats["requests_waiting"],
            max_size=stats["pool_max"],
        )

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for one request. Raises DatabaseUnavailableError when none is free or
        can be made within POOL_WAIT_SECONDS."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise DatabaseUnavailableError(
                f"no PostgreSQL connection within {POOL_WAIT_SECONDS:g} s: the database is "
                "unreachable or every connection is busy"
            ) from None


class Publisher:
    """Publishes validated events with the producer helper, connecting on first use.

    A broker that is down at start-up (or later) fails only the requests that publish; the next
    one tries to connect again.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._timeout = settings.api_publish_timeout_seconds
        self._producer: ExecutionEventProducer | None = None
        self._failure: tuple[float, str] | None = None  # (when, why) the last connection failed
        self._lock = threading.Lock()

    @property
    def topic(self) -> str:
        return self._settings.topic

    @property
    def timeout(self) -> float:
        """ROI_API_PUBLISH_TIMEOUT_SECONDS: the wait for acknowledgements, or to connect."""
        return self._timeout

    def publish(self, events: Sequence[ExecutionEvent]) -> None:
        """Blocks until the broker acknowledged every event; BrokerUnavailableError if not
        within ROI_API_PUBLISH_TIMEOUT_SECONDS, plus up to as long again to connect (or to
        wait for another request's connection attempt, whose failure is then this one's)."""
        self._connected().publish_all(events, timeout=self._timeout)

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(BrokerUnavailableError):
                producer.close(timeout=self._timeout)

    def _connected(self) -> ExecutionEventProducer:
        """The producer, connecting first if there is none.

        One request connects at a time. Requests that waited for a connection attempt which
        then failed get its error at once instead of each trying again in turn: with Kafka
        down, N concurrent POSTs would otherwise take N connection timeouts to answer, and
        hold a thread each all that time.
        """
        asked = time.monotonic()
        with self._lock:
            if self._producer is not None:
                return self._producer
            if self._failure is not None and self._failure[0] >= asked:
                raise BrokerUnavailableError(self._failure[1])
            timeout_ms = int(self._timeout * 1000)
            try:
                self._producer = ExecutionEventProducer(
                    self._settings,
                    client_id="roi-worker-api",
                    # send() waits at most this long for the topic's metadata
                    max_block_ms=timeout_ms,
                    bootstrap_timeout_ms=timeout_ms,  # the first connection, likewise
                )
            except BrokerUnavailableError as exc:
                self._failure = (time.monotonic(), str(exc))
                raise
            self._failure = None
            log.info("connected to Kafka at %s", self._settings.kafka_bootstrap_servers)
            return self._producer
