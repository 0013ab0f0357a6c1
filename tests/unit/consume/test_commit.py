"""worker.consume.commit: a commit a rebalance refuses is no Kafka error; any other failure is."""

from __future__ import annotations

from tests.fakes.kafka import FakeGroupConsumer, LocalBroker
from worker.consume.commit import OffsetCommitter
from worker.errors import BrokerUnavailableError

P = ("t", 0)


def _consumer() -> FakeGroupConsumer:
    broker = LocalBroker()
    broker.create_topic("t", partitions=1)
    return FakeGroupConsumer(broker, "t", "g")


def test_a_rebalance_refusal_is_not_a_failure() -> None:
    """A refused commit counts as done for now, and the offsets are committed once it is not."""
    consumer = _consumer()
    committer = OffsetCommitter(consumer)
    committer.stored({P: 10})
    consumer.refuse_commits = True
    assert committer.commit() is True
    assert consumer.broker.committed("g") == {}
    consumer.refuse_commits = False
    assert committer.commit(force=True) is True  # tried again: the offsets are still owed
    assert consumer.broker.committed("g") == {P: 10}


def test_other_failures_are_failures() -> None:
    """A broker that fails the commit makes it a failure, not tried again for a while."""
    consumer = _consumer()
    committer = OffsetCommitter(consumer)
    committer.stored({P: 5})
    consumer.fail_with = BrokerUnavailableError("Kafka: KafkaTimeoutError")
    assert committer.commit() is False
    consumer.fail_with = None
    assert committer.commit() is True  # within RETRY_SECONDS: not tried again yet
    assert consumer.broker.committed("g") == {}
    assert committer.commit(force=True) is True
    assert consumer.broker.committed("g") == {P: 5}


def test_offsets_of_revoked_partitions_are_forgotten() -> None:
    """What the worker no longer owns is neither reported nor committed."""
    consumer = _consumer()
    committer = OffsetCommitter(consumer)
    committer.stored({P: 7})
    committer.forget([P])
    assert committer.stored_offset(P) is None
    assert committer.commit() is True
    assert consumer.broker.committed("g") == {}
