"""StoreLoop: one store at a time, the batch kept after a failure, and `settle`'s retries (the
replay's) as a RetryPolicy says."""

from __future__ import annotations

import threading

import pytest

from tests.fakes.database import FakeDatabase, database_down
from worker.consume.prepare import Batch
from worker.consume.store import StoreLoop
from worker.consume.write import BatchWriter
from worker.errors import DatabaseUnavailableError, RetryableError
from worker.settings import RetryPolicy

QUICK = RetryPolicy(first=0.001, maximum=0.001, attempts=3)


def _batch() -> Batch:
    return Batch([], [], [], started=0.0)


class _Flaky:
    """Work that fails `failures` times, then returns how many times it ran."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.runs = 0

    def __call__(self, batch: Batch, writer: BatchWriter) -> int:
        del batch, writer
        self.runs += 1
        if self.runs <= self.failures:
            raise database_down()
        return self.runs


def test_a_failed_batch_stays_pending_and_the_connection_is_closed() -> None:
    """`finish` raises what the store raised; the batch waits to be started again over a new
    connection."""
    database = FakeDatabase()
    work = _Flaky(failures=1)
    loop = StoreLoop(database, work, name="test-store")
    batch = _batch()
    loop.start(batch)
    with pytest.raises(DatabaseUnavailableError):
        loop.finish(10)
    assert loop.pending is batch
    assert not database.connected
    loop.start(batch)
    assert loop.finish(10) == 2
    assert loop.pending is None
    assert database.connects == 2


def test_settle_retries_until_the_store_succeeds() -> None:
    """Failures within the policy's attempts are retried: the outcome is the last run's."""
    work = _Flaky(failures=2)
    loop = StoreLoop(FakeDatabase(), work, name="test-store")
    loop.start(_batch())
    assert loop.settle(QUICK, threading.Event()) == 3


def test_settle_gives_up_after_the_policy_s_attempts() -> None:
    """The policy's last attempt failing raises its error, the batch still pending."""
    work = _Flaky(failures=10)
    loop = StoreLoop(FakeDatabase(), work, name="test-store")
    loop.start(_batch())
    with pytest.raises(DatabaseUnavailableError):
        loop.settle(QUICK, threading.Event())
    assert work.runs == 3
    assert loop.pending is not None


def test_settle_does_not_retry_once_stopped() -> None:
    """Stopping (Ctrl-C, SIGTERM) ends the retries at the first failure."""
    work = _Flaky(failures=10)
    loop = StoreLoop(FakeDatabase(), work, name="test-store")
    loop.start(_batch())
    stop = threading.Event()
    stop.set()
    with pytest.raises(RetryableError):
        loop.settle(QUICK, stop)
    assert work.runs == 1


def test_a_connection_that_fails_fails_the_store() -> None:
    """Connecting happens on the store thread: its failure comes out of `finish` too."""
    database = FakeDatabase()
    database.fail_with = database_down()
    loop = StoreLoop(database, _Flaky(failures=0), name="test-store")
    loop.start(_batch())
    with pytest.raises(DatabaseUnavailableError):
        loop.finish(10)
    database.fail_with = None
    assert loop.settle(QUICK, threading.Event()) == 1
