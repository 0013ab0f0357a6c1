"""A consumer group as Kafka's group coordinator knows it: its members and committed offsets.

For the operator commands (`roi-worker offsets`), which read and move a group's offsets from
outside the group. Partitions are numbers and offsets ints; every call may block up to about
KAFKA_TIMEOUT_MS, and a Kafka failure comes out as BrokerUnavailableError.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from ..errors import BrokerUnavailableError
from ..settings import KafkaSettings
from .client import KAFKA_TIMEOUT_MS, new_admin


class GroupAdmin:
    """An admin client's view of consumer groups."""

    def __init__(self, admin: Any) -> None:
        self._admin = admin

    def committed(self, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """partition -> the group's committed offset, for those of `partitions` it has one."""
        tps = [TopicPartition(topic, p) for p in partitions]
        with _translated():
            found = self._admin.list_group_offsets({group: tps}).get(group, {})
        return {
            tp.partition: meta.offset
            for tp, meta in found.items()
            if tp.topic == topic and meta.offset >= 0  # -1: nothing committed
        }

    def state(self, group: str) -> tuple[str, int]:
        """The group's state (classic protocol: Empty, Dead, Stable, ...) and member count; a
        group that never existed is Dead with no members."""
        with _translated():
            described = self._admin.describe_groups([group]).get(group)
        if described is None:
            raise BrokerUnavailableError(f"Kafka did not describe group {group}")
        if described.get("error"):
            raise BrokerUnavailableError(f"cannot describe group {group}: {described['error']}")
        return str(described.get("group_state") or "Unknown"), len(described.get("members") or ())

    def commit(self, group: str, topic: str, offsets: Mapping[int, int]) -> dict[int, str]:
        """Sets the group's committed offsets of `topic` (the group must have no members);
        returns the partitions Kafka refused, with the name of its error."""
        with _translated():
            errors = self._admin.alter_group_offsets(
                group,
                {
                    TopicPartition(topic, p): OffsetAndMetadata(offset, "", -1)
                    for p, offset in offsets.items()
                },
            )
        return {
            tp.partition: error.__name__
            for tp, error in errors.items()
            if error is not None and error.errno != 0
        }


@contextmanager
def open_admin(settings: KafkaSettings, client_id: str) -> Iterator[GroupAdmin]:
    """An admin client named `client_id`, closed on leaving. Raises BrokerUnavailableError
    when Kafka cannot be reached."""
    admin = new_admin(settings, client_id=client_id, request_timeout_ms=KAFKA_TIMEOUT_MS)
    try:
        yield GroupAdmin(admin)
    finally:
        admin.close()


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka: {type(exc).__name__}: {exc}") from exc
