"""Stage 4, commit: after the database commit, tell Kafka too (for lag tooling and operators).

The database's stored offsets are the truth; Kafka's committed offsets follow them and may lag
behind after a failed commit, which only means re-delivery of events that are then duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_MS = 5000
RETRY_SECONDS = 5.0
# What a commit gets while the group is rebalancing or after this member lost its partitions.
REBALANCE_REFUSALS = (
    CommitFailedError,
    RebalanceInProgressError,
    IllegalGenerationError,
    UnknownMemberIdError,
)


class KafkaCommitter:
    """Remembers what the database has stored and commits it to Kafka."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer
        self._stored: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._retry_at = 0.0

    def stored(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Records next offsets the database has just committed."""
        self._stored.update(offsets)

    def stored_offset(self, partition: TopicPartition) -> int | None:
        return self._stored.get(partition)

    def commit(self, *, force: bool = False) -> bool:
        """Commits the stored offsets Kafka does not have yet. False if Kafka failed; a refusal
        because of a rebalance is not a failure (True).

        After a failure, further attempts wait RETRY_SECONDS (unless `force`), so a flaky
        coordinator does not stall every batch for the commit timeout.
        """
        pending = {tp: o for tp, o in self._stored.items() if self._committed.get(tp) != o}
        if not pending or (not force and time.monotonic() < self._retry_at):
            return True
        try:
            self._consumer.commit(
                {tp: OffsetAndMetadata(o, "", -1) for tp, o in pending.items()},
                timeout_ms=COMMIT_TIMEOUT_MS,
            )
        except REBALANCE_REFUSALS as exc:
            # The group is moving partitions: the next owner starts from the database's
            # offsets anyway. Part of every rollout, so not a Kafka error.
            log.info("a rebalance refused the offset commit (the database has them): %s", exc)
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return True
        except KafkaError as exc:
            log.warning("committing offsets to Kafka failed (the database has them): %s", exc)
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return False
        self._committed.update(pending)
        return True

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drops partitions this worker no longer owns."""
        for tp in partitions:
            self._stored.pop(tp, None)
            self._committed.pop(tp, None)
