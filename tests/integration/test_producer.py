"""The producer helper against the real broker: validated, keyed, exact, acknowledged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from kafka import KafkaAdminClient

from tests.fixtures.services import Services, create_topic, delete_topics
from tests.worker_harness import read_topic
from worker import producer
from worker.contract import json_codec
from worker.contract.validate import validate
from worker.errors import InvalidEventError
from worker.producer import ExecutionEventProducer, track_pattern_execution
from worker.settings import KafkaSettings


@pytest.fixture
def topic_name(kafka_admin: KafkaAdminClient) -> Iterator[str]:
    name = create_topic(kafka_admin, "producer")
    yield name
    delete_topics(kafka_admin, name)


def test_track_publishes_a_valid_event_keyed_by_pattern(
    services: Services, topic_name: str
) -> None:
    settings = KafkaSettings(
        topic=topic_name, kafka_bootstrap_servers=services.kafka_bootstrap_servers
    )
    with ExecutionEventProducer(settings) as publisher:
        event_id = publisher.track(
            "test-retry-automation",
            success=True,
            execution_time_seconds=0.1,  # a float: goes through repr, so exactly 0.1
            estimated_time_seconds=300,
            actual_cost="0.42",
            estimated_cost=Decimal("25.00"),
            workflow_id="wf-1",
            wait=True,
        )
    [record] = read_topic(services.kafka_bootstrap_servers, topic_name, expected=1)
    assert record.key == b"test-retry-automation"
    event = validate(json_codec.loads(record.value.decode()))
    assert event.event_id == event_id
    assert event.execution_time_seconds == Decimal("0.1")
    assert event.actual_cost == Decimal("0.42")
    assert event.workflow_id == "wf-1"


def test_an_invalid_event_fails_at_the_producer_and_is_not_sent(
    services: Services, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROI_KAFKA_BOOTSTRAP_SERVERS", services.kafka_bootstrap_servers)
    monkeypatch.setenv("ROI_TOPIC", topic_name)
    monkeypatch.setattr(producer, "_default", None)
    with pytest.raises(InvalidEventError) as caught:
        track_pattern_execution(
            "bad pattern id",
            success=True,
            execution_time_seconds=1,
            estimated_time_seconds=2,
            actual_cost="-1",
            estimated_cost="1",
        )
    assert set(caught.value.fields) == {"pattern_id", "actual_cost"}

    event_id = track_pattern_execution(
        "ok",
        success=False,
        execution_time_seconds=1,
        estimated_time_seconds=2,
        actual_cost="0.01",
        estimated_cost="1",
        error_message="flaky",
    )
    [record] = read_topic(services.kafka_bootstrap_servers, topic_name, expected=1)
    assert json_codec.loads(record.value.decode())["event_id"] == str(event_id)
    producer.default_producer().close()
    assert isinstance(event_id, uuid.UUID)
