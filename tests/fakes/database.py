"""An in-memory stand-in for the pipeline's PostgreSQL connection (worker.consume.store.Database):
stored events and offsets, and a test's hand on when a write ends and whether it fails."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from worker.consume.store import Database
from worker.consume.write import BatchWriter, ValidEvent, WriteResult
from worker.db.offsets import Saved
from worker.errors import DatabaseUnavailableError, RetryableError
from worker.types import Partition

WAIT_SECONDS = 10.0  # the longest a held write waits to be released: a test that forgets fails


def database_down() -> DatabaseUnavailableError:
    return DatabaseUnavailableError("PostgreSQL: connection refused (the fake database is down)")


class FakeDatabase(Database):
    """Events by id and next offsets by partition, as one transaction per write stores them.

    `fail_with`: every statement raises it (connecting included). `hold()`: the next writes
    wait, once begun (`writing` is set), until `release()`; a cancel (the pipeline's way out)
    makes a held write fail as PostgreSQL's would.
    """

    def __init__(self, group: str = "roi-worker") -> None:
        super().__init__("postgresql://fake@localhost/fake", group)
        self.fail_with: RetryableError | None = None
        self.events: dict[Any, bytes] = {}
        self.offsets: dict[Partition, int] = {}
        self.writes = 0
        self.connects = 0
        self.writing = threading.Event()  # a write has begun and is held
        self._released = threading.Event()
        self._released.set()
        self._cancelled = False
        self._fake_writer: _FakeWriter | None = None

    @property
    def connected(self) -> bool:
        return self._fake_writer is not None

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def writer(self) -> BatchWriter:
        self.fail()
        if self._fake_writer is None:
            self.connects += 1
            self._fake_writer = _FakeWriter(self)
        return cast(BatchWriter, self._fake_writer)

    def load_offsets(self, topics: Sequence[str]) -> dict[Partition, Saved]:
        self.writer()
        now = datetime.now(UTC)
        return {p: Saved(o, now) for p, o in self.offsets.items() if p[0] in topics}

    def cancel(self, timeout: float) -> None:
        del timeout
        self._cancelled = True
        self._released.set()

    def close(self) -> None:
        self._fake_writer = None

    def forget(self) -> None:
        self._fake_writer = None

    def fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def store(
        self,
        events: Sequence[ValidEvent],
        next_offsets: Mapping[Partition, int],
        before_commit: Callable[[WriteResult], None],
    ) -> WriteResult:
        if not self._released.is_set():
            self.writing.set()
            if not self._released.wait(WAIT_SECONDS):
                raise AssertionError("a held write was never released")
        self.writing.clear()
        if self._cancelled:
            self._cancelled = False
            raise DatabaseUnavailableError("PostgreSQL: canceling statement due to user request")
        self.fail()
        result = WriteResult()
        fresh: dict[Any, bytes] = {}
        for item in events:
            known = self.events.get(item.event.event_id, fresh.get(item.event.event_id))
            if known is None:
                fresh[item.event.event_id] = item.fingerprint
                result.inserted.append(item)
            else:
                result.duplicates.append(item)
        before_commit(result)  # may raise: then nothing is stored
        self.events.update(fresh)
        self.offsets.update(next_offsets)
        self.writes += 1
        return result


class _FakeWriter:
    """The part of BatchWriter the pipeline uses."""

    def __init__(self, database: FakeDatabase) -> None:
        self._database = database

    def write(
        self,
        events: Sequence[ValidEvent],
        next_offsets: Mapping[Partition, int],
        before_commit: Callable[[WriteResult], None],
        **kwargs: Any,
    ) -> WriteResult:
        del kwargs
        return self._database.store(events, next_offsets, before_commit)

    def ping(self) -> None:
        self._database.fail()
