"""worker.consume.commit: a commit a rebalance refuses is no Kafka error; any other failure is."""

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

from worker.consume.commit import KafkaCommitter

TP = TopicPartition("t", 0)


class _Consumer:
    def __init__(self, error: KafkaError | None) -> None:
        self.error = error
        self.commits: list[dict[TopicPartition, Any]] = []

    def commit(self, offsets: dict[TopicPartition, Any], timeout_ms: int) -> None:
        del timeout_ms
        if self.error is not None:
            raise self.error
        self.commits.append(offsets)


@pytest.mark.parametrize(
    "refusal",
    [
        CommitFailedError(),
        RebalanceInProgressError(),
        IllegalGenerationError(),
        UnknownMemberIdError(),
    ],
)
def test_a_rebalance_refusal_is_not_a_failure(refusal: KafkaError) -> None:
    consumer = _Consumer(refusal)
    committer = KafkaCommitter(consumer)
    committer.stored({TP: 10})
    assert committer.commit() is True
    consumer.error = None
    assert committer.commit(force=True) is True  # tried again: the offsets are still owed
    assert consumer.commits[-1][TP].offset == 10


def test_other_failures_are_failures() -> None:
    consumer = _Consumer(KafkaTimeoutError())
    committer = KafkaCommitter(consumer)
    committer.stored({TP: 5})
    assert committer.commit() is False
    assert committer.commit() is True  # within RETRY_SECONDS: not tried again yet
    assert not consumer.commits
