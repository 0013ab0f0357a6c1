"""store_around_locks: a partition held up by another transaction's locks does not hold up the
others (pure logic, with a writer that refuses what touches a locked partition)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, cast

from tests.integration.events import BASE_TIME, sample_events
from worker.consume.prepare import prepare
from worker.consume.store import store_around_locks
from worker.consume.write import ValidEvent, WriteResult
from worker.errors import LockWaitError
from worker.types import Message, Partition


class _Writer:
    """Stores any batch without partition `locked`; a batch with it waits past lock_timeout."""

    def __init__(self, locked: set[Partition]) -> None:
        self.locked = locked
        self.written: list[set[Partition]] = []

    def write(
        self,
        events: Sequence[ValidEvent],
        next_offsets: Mapping[Partition, int],
        before_commit: Callable[[WriteResult], None],
        **kwargs: Any,
    ) -> WriteResult:
        if set(next_offsets) & self.locked:
            raise LockWaitError("PostgreSQL: canceling statement due to lock timeout")
        self.written.append(set(next_offsets))
        result = WriteResult(inserted=list(events))
        before_commit(result)
        return result


def batch_over(partitions: int) -> Any:
    samples = sample_events(30)
    messages = [
        Message("events", index % partitions, index, 0, s.key, s.value, [])
        for index, s in enumerate(samples)
    ]
    batch = prepare(messages, now=BASE_TIME + timedelta(days=60), closed=0.0)
    assert len(batch.valid) == 30
    return batch


def test_a_locked_partition_is_held_back_and_the_others_stored() -> None:
    """The batch waits on partition 1's locks: partitions 0 and 2 are stored each in a
    transaction of its own, 1 is held back, and nothing of 1 counts as stored."""
    batch = batch_over(3)
    writer = _Writer(locked={("events", 1)})
    around = store_around_locks(batch, cast(Any, writer), None)
    assert around.held == {("events", 1)}
    assert writer.written == [{("events", 0)}, {("events", 2)}]
    assert around.batch is not None
    assert set(around.batch.next_offsets) == {("events", 0), ("events", 2)}
    assert {item.source.partition for item in around.stored.result.inserted} == {0, 2}
    assert len(around.stored.result.inserted) == 20


def test_a_batch_without_locks_is_stored_whole() -> None:
    """No lock wait: one transaction, nothing held back."""
    batch = batch_over(3)
    writer = _Writer(locked=set())
    around = store_around_locks(batch, cast(Any, writer), None)
    assert around.held == set()
    assert around.batch is batch
    assert writer.written == [{("events", 0), ("events", 1), ("events", 2)}]


def test_a_single_locked_partition_is_held_back_without_splitting() -> None:
    """A batch of one partition that waits is simply held back: nothing is stored."""
    batch = batch_over(1)
    writer = _Writer(locked={("events", 0)})
    around = store_around_locks(batch, cast(Any, writer), None)
    assert around.held == {("events", 0)}
    assert around.batch is None
    assert writer.written == []
