"""worker.kafka.group: what kafka-python raises becomes the pipeline's terms (a refused commit
is False, any other Kafka error BrokerUnavailableError), and partitions come out as tuples."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    KafkaTimeoutError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from worker.errors import BrokerUnavailableError
from worker.kafka.group import KafkaGroupConsumer
from worker.settings import Settings


class _Client:
    """The kafka-python calls these tests make, answered from memory."""

    def __init__(self, error: KafkaError | None = None) -> None:
        self.error = error
        self.commits: list[dict[TopicPartition, Any]] = []
        self.paused_partitions: set[TopicPartition] = set()

    def commit(self, offsets: dict[TopicPartition, Any], timeout_ms: int) -> None:
        del timeout_ms
        if self.error is not None:
            raise self.error
        self.commits.append(offsets)

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("t", 0), TopicPartition("t", 1)}

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused_partitions |= set(partitions)

    def end_offsets(self, partitions: list[TopicPartition], timeout_ms: int) -> Any:
        del timeout_ms
        if self.error is not None:
            raise self.error
        return dict.fromkeys(partitions, 9)


def _joined(client: _Client) -> KafkaGroupConsumer:
    consumer = KafkaGroupConsumer(Settings(database_url="postgresql://roi@localhost/roi"))
    consumer._consumer = client  # as join() leaves it, without a broker
    return consumer


@pytest.mark.parametrize(
    "refusal",
    [
        CommitFailedError(),
        RebalanceInProgressError(),
        IllegalGenerationError(),
        UnknownMemberIdError(),
    ],
)
def test_a_commit_a_rebalance_refuses_is_false(refusal: KafkaError) -> None:
    """The group moving partitions refuses the commit: not a failure."""
    assert _joined(_Client(refusal)).commit({("t", 0): 10}) is False


def test_a_commit_that_fails_otherwise_is_a_broker_outage() -> None:
    """Any other Kafka error is BrokerUnavailableError, naming the client's error."""
    with pytest.raises(BrokerUnavailableError, match="KafkaTimeoutError"):
        _joined(_Client(KafkaTimeoutError())).commit({("t", 0): 10})


def test_offsets_go_in_and_come_out_as_partition_tuples() -> None:
    """TopicPartition stays inside worker/kafka/: the pipeline sees (topic, partition)."""
    client = _Client()
    consumer = _joined(client)
    assert consumer.commit({("t", 0): 10}) is True
    assert client.commits[0][TopicPartition("t", 0)].offset == 10
    assert consumer.assignment() == {("t", 0), ("t", 1)}
    assert all(type(p) is tuple for p in consumer.assignment())
    consumer.pause([("t", 1)])
    assert client.paused_partitions == {TopicPartition("t", 1)}
    ends = consumer.end_offsets([("t", 0)], timeout=1.0)
    assert ends == {("t", 0): 9}
    assert all(type(p) is tuple for p in ends)


def test_a_consumer_that_left_owns_nothing() -> None:
    """Before join and after leave: no partitions, and calls that need the group fail as an
    outage the loop backs off from."""
    consumer = KafkaGroupConsumer(Settings(database_url="postgresql://roi@localhost/roi"))
    assert consumer.assignment() == set()
    with pytest.raises(BrokerUnavailableError):
        consumer.poll(0.01, 1)
