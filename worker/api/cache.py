"""A short-lived cache of computed answers, so that concurrent readers share one computation.

Used for the analytics of every pattern (the summary, top-performers and underperformers
endpoints): with 500 patterns they cost tens of milliseconds to read and derive, and
dashboards ask for them all the time. Within `seconds` of a computation the same key gets the
same answer; a reader that finds none (or a stale one) computes it while readers of the same
key wait for it instead of computing it again. `seconds = 0` turns the cache off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_KEYS = 64  # windows x min_executions combinations kept; more: the oldest is dropped


class TtlCache(Generic[K, V]):
    """Thread-safe. `compute` runs outside the cache's own lock, under the key's lock.

    At most MAX_KEYS answers (and their locks) are kept, plus the locks of computations under
    way.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._locks: dict[K, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: K, compute: Callable[[], V]) -> V:
        if self._seconds <= 0:
            return compute()
        with self._lock:
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            entry = self._entries.get(key)
            now = self._clock()
            if entry is not None and now - entry[0] < self._seconds:
                return entry[1]
            try:
                value = compute()
            except BaseException:
                # Nothing is stored and the next reader tries again. The key's lock goes too:
                # keys that never compute (a database down, odd parameters) must not pile up.
                with self._lock:
                    if key not in self._entries:
                        self._locks.pop(key, None)
                raise
            with self._lock:
                self._entries[key] = (self._clock(), value)
                while len(self._entries) > MAX_KEYS:
                    oldest = min(self._entries, key=lambda k: self._entries[k][0])
                    del self._entries[oldest]
                    self._locks.pop(oldest, None)
            return value
