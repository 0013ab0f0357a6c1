"""A batch whose store failed is stored again only for the partitions the worker still owns."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.fakes.kafka import FakeGroupConsumer, LocalBroker
from tests.strategies import example_document
from worker.consume.pipeline import Pipeline
from worker.consume.prepare import prepare
from worker.contract import json_codec
from worker.settings import Settings
from worker.types import Message


def _message(partition: int, offset: int) -> Message:
    value = json_codec.dumps(example_document(event_id=f"00000000-0000-4000-8000-{offset:012d}"))
    return Message("t", partition, offset, 0, None, value.encode(), [])


def test_a_retried_batch_keeps_only_the_partitions_still_assigned() -> None:
    """The batch to store again loses the messages of partitions revoked since it was polled."""
    broker = LocalBroker()
    broker.create_topic("t", partitions=2)
    consumer = FakeGroupConsumer(broker, "t", "roi-worker", auto_assign=False)
    pipeline = Pipeline(Settings(database_url="postgresql://roi@localhost/roi"), consumer=consumer)
    consumer.join(pipeline, first=True)
    consumer.assign([("t", 0)])  # t/1 is another member's by now
    consumer.poll(0, 1)  # a rebalance reaches the listener from inside a poll
    messages = [_message(0, 1), _message(1, 2), _message(1, 3)]
    batch = prepare(messages, now=datetime.now(UTC), closed=time.monotonic())

    owned = pipeline._owned(batch)

    assert owned is not None
    assert [(m.partition, m.offset) for m in owned.messages] == [(0, 1)]
    assert [v.source.offset for v in owned.valid] == [1]
    assert owned.next_offsets == {("t", 0): 2}
    consumer.revoke([("t", 0)])  # everything revoked
    consumer.poll(0, 1)
    assert pipeline._owned(batch) is None
