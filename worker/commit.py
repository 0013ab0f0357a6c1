"""Stage 4, commit: after the database commit, tell Kafka too (for lag tooling and operators).

The database's stored offsets are the truth; Kafka's committed offsets follow them and may lag
behind after a failed commit, which only means re-delivery of events that are then duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_MS = 5000


class KafkaCommitter:
    """Remembers what the database has stored and commits it to Kafka."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer
        self._stored: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def stored(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Records next offsets the database has just committed."""
        self._stored.update(offsets)

    def stored_offset(self, partition: TopicPartition) -> int | None:
        return self._stored.get(partition)

    def commit(self, partitions: Iterable[TopicPartition] | None = None) -> bool:
        """Commits the stored offsets Kafka does not have yet. False if Kafka refused."""
        wanted = (
            self._stored
            if partitions is None
            else {tp: self._stored[tp] for tp in partitions if tp in self._stored}
        )
        pending = {tp: o for tp, o in wanted.items() if self._committed.get(tp) != o}
        if not pending:
            return True
        try:
            self._consumer.commit(
                {tp: OffsetAndMetadata(o, "", -1) for tp, o in pending.items()},
                timeout_ms=COMMIT_TIMEOUT_MS,
            )
        except KafkaError as exc:
            log.warning("committing offsets to Kafka failed (the database has them): %s", exc)
            return False
        self._committed.update(pending)
        return True

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drops partitions this worker no longer owns."""
        for tp in partitions:
            self._stored.pop(tp, None)
            self._committed.pop(tp, None)
