"""Produce-to-summary latency at a steady rate.

A producer thread sends at `rate` events/s and records, for each acknowledged event, its
(partition, offset) and the moment it was handed to send(). A poller thread reads the group's
stored offsets every POLL_SECONDS and records when each partition's next offset first moved
past each value. The worker stores offsets in the same transaction as the summaries, so the
moment an offset is visible is the moment the summary rows include the event: latency =
first visible - sent. The poll interval bounds the error (+0 to POLL_SECONDS).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from tests.benchmarks import workload

POLL_SECONDS: Final = 0.005
DRAIN_TIMEOUT_SECONDS: Final = 120.0
SEND_SLICE_SECONDS: Final = 0.002  # the producer wakes this often and sends what is due

_STORED: Final = (
    "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = %s AND topic = %s"
)


@dataclass(frozen=True, slots=True)
class Latencies:
    sent: int
    seconds: float  # from the first send to the last
    values: list[float]  # seconds, sorted; one per event seen stored

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile."""
        rank = math.ceil(fraction * len(self.values))
        return self.values[max(0, min(len(self.values), rank) - 1)]


class OffsetWatcher:
    """Records (time, next offset) each time a partition's stored offset moves (a thread)."""

    def __init__(self, database_url: str, group: str, topic: str) -> None:
        self._url, self._group, self._topic = database_url, group, topic
        self.moves: dict[int, list[tuple[int, float]]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="offset-watcher", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def visible_at(self, partition: int, offset: int) -> float | None:
        """When the stored next offset of `partition` first exceeded `offset`."""
        moves = self.moves.get(partition, [])
        index = bisect.bisect_right(moves, (offset, float("inf")))
        return moves[index][1] if index < len(moves) else None

    def _run(self) -> None:
        try:
            with psycopg.connect(self._url, autocommit=True) as conn:
                while not self._stop.is_set():
                    rows = conn.execute(_STORED, (self._group, self._topic)).fetchall()
                    now = time.monotonic()
                    for partition, offset in rows:
                        moves = self.moves[partition]
                        if not moves or offset > moves[-1][0]:
                            moves.append((offset, now))
                    self._stop.wait(POLL_SECONDS)
        except BaseException as exc:  # reported by the caller
            self.error = exc


def measure(
    bootstrap_servers: str,
    topic: str,
    watcher: OffsetWatcher,
    *,
    rate: float,
    seconds: float,
    seed: int,
    patterns: int = workload.PATTERNS,
) -> Latencies:
    """Sends at `rate` for `seconds`, waits until every event is visible, returns latencies."""
    sent: list[tuple[float, Any]] = []
    producer = workload.producer(bootstrap_servers, None, linger_ms=5, batch_size=16384)
    count = int(rate * seconds)
    try:
        started = time.monotonic()
        events = workload.events(count, seed, workload.base_time(), patterns)
        for index, (key, value) in enumerate(events):
            due = started + index / rate
            while (now := time.monotonic()) < due:
                time.sleep(min(SEND_SLICE_SECONDS, due - now))
            sent.append((time.monotonic(), producer.send(topic, key=key, value=value)))
        producer.flush(timeout=60)
        duration = sent[-1][0] - started if sent else 0.0
    finally:
        producer.close(timeout=10)
    acked = [(at, future.get(timeout=0)) for at, future in sent]
    return Latencies(len(acked), duration, _collect(watcher, acked))


def _collect(watcher: OffsetWatcher, acked: Sequence[tuple[float, Any]]) -> list[float]:
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while True:
        if watcher.error is not None:
            raise RuntimeError(f"reading the stored offsets failed: {watcher.error}")
        seen = [watcher.visible_at(meta.partition, meta.offset) for _, meta in acked]
        if all(at is not None for at in seen) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = sum(at is None for at in seen)
    if missing:
        raise TimeoutError(f"{missing} events were not stored {DRAIN_TIMEOUT_SECONDS:g} s later")
    return sorted(at - sent for (sent, _), at in zip(acked, seen, strict=True) if at is not None)
