"""Stores each batch on a thread of its own, so that the loop decodes the next batch meanwhile.

The store waits on PostgreSQL for most of its time, and psycopg releases the GIL while it waits:
overlapping it with the next batch's poll, decode and validate hides most of that wait
(docs/benchmarks.md). At most one store runs at a time, so batches are stored in the order they
were polled, and the loop stays the only user of the consumer: the thread never touches Kafka's
consumer, only the database connection and the (thread-safe) dead-letter producer.

Contract: `start` while `busy` is False; `wait` returns the outcome of the last `start`, or
raises what the store raised. While a store runs, nobody else may use its connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Finished(Generic[T]):
    """What a finished store returned."""

    value: T


class BackgroundStore(Generic[T]):
    """One store in flight at most; its outcome is collected with `wait`.

    The stores run one after another on one daemon thread, started with the first: a store
    stuck on a dead database must not keep the process alive after the loop has given up on
    it. A thread per batch cost the loop a wait at every batch, for the new thread to get the
    GIL and say it had started.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._busy = False
        self._work: Callable[[], T] | None = None
        self._posted = threading.Event()
        self._done = threading.Event()
        self._finished: Finished[T] | None = None
        self._error: BaseException | None = None

    @property
    def busy(self) -> bool:
        """True from `start` until `wait` has returned its outcome."""
        return self._busy

    @property
    def done(self) -> bool:
        """True when `wait` would return (or raise) at once."""
        return self._busy and self._done.is_set()

    def start(self, store: Callable[[], T]) -> None:
        """Hands `store` to the store thread (starting it the first time)."""
        if self._busy:
            raise RuntimeError("a store is already in flight")
        if self._thread is None:
            thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            thread.start()  # may raise: then nothing is in flight
            self._thread = thread
        self._done.clear()
        self._finished, self._error = None, None
        self._work = store
        self._busy = True
        self._posted.set()

    def _serve(self) -> None:
        while True:
            self._posted.wait()
            self._posted.clear()
            store, self._work = self._work, None
            if store is None:
                continue
            try:
                self._finished = Finished(store())
            except BaseException as exc:  # handed to the loop, which decides what it means
                self._error = exc
            finally:
                self._done.set()

    def settled(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for the store in flight to end, without taking its
        outcome; True once it has ended (or if none is in flight)."""
        return not self._busy or self._done.wait(timeout)

    def wait(self, timeout: float | None = None) -> Finished[T] | None:
        """The outcome of the store in flight, once it has finished; None if it is still
        running after `timeout` seconds (or if none was started). Raises what the store raised.
        """
        if not self._busy or not self._done.wait(timeout):
            return None
        self._busy = False
        finished, error = self._finished, self._error
        self._finished, self._error = None, None
        if error is not None:
            raise error
        return finished
