"""A batch whose store failed is stored again only for the partitions the worker still owns."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from kafka import TopicPartition

from tests.strategies import example_document
from worker.consume.batch import prepare
from worker.consume.pipeline import Pipeline
from worker.contract import json_codec
from worker.settings import Settings
from worker.types import Message


class _Consumer:
    """The one consumer call `Pipeline._owned` makes."""

    def __init__(self, *assigned: TopicPartition) -> None:
        self.assigned = set(assigned)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)


def _message(partition: int, offset: int) -> Message:
    value = json_codec.dumps(example_document(event_id=f"00000000-0000-4000-8000-{offset:012d}"))
    return Message("t", partition, offset, 0, None, value.encode(), [])


def test_a_retried_batch_keeps_only_the_partitions_still_assigned() -> None:
    pipeline = Pipeline(Settings(database_url="postgresql://roi@localhost/roi"))
    messages = [_message(0, 1), _message(1, 2), _message(1, 3)]
    batch = prepare(messages, now=datetime.now(UTC), closed=time.monotonic())
    pipeline._consumer = _Consumer(TopicPartition("t", 0))  # t/1 was revoked meanwhile

    owned = pipeline._owned(batch)

    assert owned is not None
    assert [(m.partition, m.offset) for m in owned.messages] == [(0, 1)]
    assert [v.source.offset for v in owned.valid] == [1]
    assert owned.next_offsets == {("t", 0): 2}
    pipeline._consumer = _Consumer()  # everything revoked
    assert pipeline._owned(batch) is None
