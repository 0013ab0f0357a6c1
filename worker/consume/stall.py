"""Stall detection: which owned partitions have had events to store and stored none for long.

A partition makes progress when its stored offset moves forward, or when it has nothing to
store (lag 0). One that has done neither for `limit` seconds since it was assigned is stuck,
whatever the cause: a wedged client, a record nothing can get past, a database outage, a lock
held by a frozen peer. The pipeline reports stuck partitions on /readyz and /healthz and hands
them back to the group (worker/consume/pipeline.py).

Pure bookkeeping: the caller passes the monotonic time, so tests need no clock.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Partition:
    progress: float  # monotonic time of the last progress
    stored: int | None = None  # the last stored next offset seen


class StallWatch(Generic[K]):
    """When each owned partition last made progress."""

    def __init__(self, limit: float) -> None:
        self.limit = limit  # seconds without progress, with lag, that make a partition stuck
        self.last_progress = float("-inf")  # of any partition; an assignment is not progress
        self._partitions: dict[K, _Partition] = {}
        self._handed_back: dict[K, _Partition] = {}
        self._handed_back_at = float("-inf")

    def assigned(self, partitions: Iterable[K], now: float) -> None:
        """Newly owned partitions start their clock now; one this worker handed back keeps
        the clock it had, so that handing back cannot hide a stall."""
        for key in partitions:
            kept = self._handed_back.pop(key, None)
            recent = kept is not None and now - self._handed_back_at < self.limit
            self._partitions[key] = kept if kept is not None and recent else _Partition(now)

    def revoked(self, partitions: Iterable[K]) -> None:
        for key in partitions:
            self._partitions.pop(key, None)

    @property
    def handed_back_at(self) -> float:
        """The monotonic time of the last hand back."""
        return self._handed_back_at

    def hand_back(self, now: float) -> None:
        """Every partition is being given up to the group. Those assigned back within `limit`
        seconds keep their clocks; later, another replica has had them meanwhile."""
        self._handed_back = dict(self._partitions)
        self._handed_back_at = now
        self._partitions.clear()

    def stored(self, key: K, next_offset: int, now: float) -> bool:
        """The database now holds `key` up to `next_offset`; True if that is progress (the
        first stored offset seen, or one further than the last)."""
        partition = self._partitions.get(key)
        if partition is None:
            return False
        moved = partition.stored is None or next_offset > partition.stored
        partition.stored = next_offset
        if moved:
            self._progress(partition, now)
        return moved

    def lag(self, key: K, lag: int, now: float) -> bool:
        """A fresh reading of the partition's lag; True if that is progress: with no lag there
        is nothing to be stuck on."""
        partition = self._partitions.get(key)
        if partition is None or lag > 0:
            return False
        self._progress(partition, now)
        return True

    def _progress(self, partition: _Partition, now: float) -> None:
        partition.progress = now
        self.last_progress = now

    def stuck(self, now: float) -> dict[K, float]:
        """The partitions without progress for longer than the limit, with their idle seconds."""
        return {
            key: now - partition.progress
            for key, partition in self._partitions.items()
            if now - partition.progress > self.limit
        }
