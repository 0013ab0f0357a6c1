"""A group's committed offsets and state, read and moved through GroupAdmin: partitions as
numbers, offsets as ints, failures as BrokerUnavailableError (a fake admin client, no broker)."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError, NoError, NotCoordinatorError
from kafka.structs import OffsetAndMetadata

from worker.errors import BrokerUnavailableError
from worker.kafka.admin import GroupAdmin


class _Admin:
    """Answers like KafkaAdminClient, from what it is given."""

    def __init__(self, described: dict[str, Any] | None = None) -> None:
        self.described = described
        self.altered: dict[TopicPartition, OffsetAndMetadata] = {}

    def list_group_offsets(self, groups: dict[str, list[TopicPartition]]) -> dict[str, Any]:
        return {
            "g": {
                TopicPartition("t", 0): OffsetAndMetadata(5, "", -1),
                TopicPartition("t", 1): OffsetAndMetadata(-1, "", -1),  # nothing committed
                TopicPartition("other", 0): OffsetAndMetadata(9, "", -1),
            }
        }

    def describe_groups(self, groups: list[str]) -> dict[str, Any]:
        if self.described is None:
            raise KafkaTimeoutError("no answer")
        return {"g": self.described}

    def alter_group_offsets(
        self, group: str, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, Any]:
        self.altered = offsets
        return {
            TopicPartition("t", 0): NoError,
            TopicPartition("t", 1): NotCoordinatorError,
        }


def test_committed_offsets_leave_out_partitions_without_one() -> None:
    """-1 (nothing committed) and other topics' partitions are not offsets of this topic."""
    assert GroupAdmin(_Admin()).committed("g", "t", [0, 1]) == {0: 5}


def test_a_group_state_and_its_member_count() -> None:
    """State and members as described; a described error or no answer is an outage."""
    members = [{"member_id": "a"}, {"member_id": "b"}]
    assert GroupAdmin(_Admin({"group_state": "Stable", "members": members})).state("g") == (
        "Stable",
        2,
    )
    with pytest.raises(BrokerUnavailableError, match=r"^cannot describe group g: boom$"):
        GroupAdmin(_Admin({"error": "boom"})).state("g")
    with pytest.raises(BrokerUnavailableError, match=r"^Kafka: KafkaTimeoutError: "):
        GroupAdmin(_Admin(None)).state("g")


def test_a_commit_names_the_partitions_kafka_refused() -> None:
    """Every offset is sent as the group's committed offset; the refused come back by name."""
    admin = _Admin()
    refused = GroupAdmin(admin).commit("g", "t", {0: 3, 1: 7})
    assert refused == {1: "NotCoordinatorError"}
    assert {tp.partition: meta.offset for tp, meta in admin.altered.items()} == {0: 3, 1: 7}
