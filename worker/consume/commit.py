"""Stage 4, commit: after the database commit, tell Kafka too (for lag tooling and operators).

The database's stored offsets are the truth; Kafka's committed offsets follow them and may lag
behind after a failed commit, which only means re-delivery of events that are then duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Final

from ..errors import BrokerUnavailableError
from ..types import GroupConsumer, Partition

log = logging.getLogger(__name__)

RETRY_SECONDS: Final = 5.0


class OffsetCommitter:
    """Remembers what the database has stored and commits it to the group."""

    def __init__(self, consumer: GroupConsumer) -> None:
        self._consumer = consumer
        self._stored: dict[Partition, int] = {}
        self._committed: dict[Partition, int] = {}
        self._retry_at = 0.0

    def stored(self, offsets: Mapping[Partition, int]) -> None:
        """Records next offsets the database has just committed."""
        self._stored.update(offsets)

    def stored_offset(self, partition: Partition) -> int | None:
        return self._stored.get(partition)

    def commit(self, *, force: bool = False) -> bool:
        """Commits the stored offsets Kafka does not have yet. False if Kafka failed; a refusal
        because of a rebalance is not a failure (True).

        After a failure or a refusal, further attempts wait RETRY_SECONDS (unless `force`), so
        a flaky coordinator does not stall every batch for the commit timeout.
        """
        pending = {p: o for p, o in self._stored.items() if self._committed.get(p) != o}
        if not pending or (not force and time.monotonic() < self._retry_at):
            return True
        try:
            accepted = self._consumer.commit(pending)
        except BrokerUnavailableError as exc:
            log.warning("committing offsets to Kafka failed (the database has them): %s", exc)
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return False
        if not accepted:
            # The group is moving partitions: the next owner starts from the database's
            # offsets anyway. Part of every rollout, so not a Kafka error.
            log.info("a rebalance refused the offset commit (the database has the offsets)")
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return True
        self._committed.update(pending)
        return True

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Drops partitions this worker no longer owns."""
        for partition in partitions:
            self._stored.pop(partition, None)
            self._committed.pop(partition, None)
