"""Smoke test of the real broker: kafka-python produces and consumes through it."""

from __future__ import annotations

import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.fixtures.services import Services
from tests.strategies import NOW, example_document
from worker.contract import json_codec
from worker.contract.validate import parse_event


def test_an_event_goes_through_the_broker_intact(services: Services, topic: str) -> None:
    """An event produced with key and headers is consumed byte for byte, and still valid."""
    value = json_codec.dumps(example_document(event_id=str(uuid.uuid4()))).encode()
    producer = KafkaProducer(
        bootstrap_servers=services.kafka_bootstrap_servers, acks="all", linger_ms=0
    )
    try:
        metadata = producer.send(
            topic, key=b"test-retry-automation", value=value, headers=[("source", b"smoke")]
        ).get(timeout=30)
    finally:
        producer.close(timeout=10)

    consumer = KafkaConsumer(
        bootstrap_servers=services.kafka_bootstrap_servers,
        group_id=f"roi-test-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partition = TopicPartition(topic, metadata.partition)
        consumer.assign([partition])
        consumer.seek(partition, metadata.offset)
        records = consumer.poll(timeout_ms=30_000, max_records=1).get(partition, [])
    finally:
        consumer.close()

    assert records, "the produced message was not consumed within 30 s"
    record = records[0]
    assert (record.key, record.value, record.offset) == (
        b"test-retry-automation",
        value,
        metadata.offset,
    )
    assert record.headers == [("source", b"smoke")]
    assert parse_event(record.value, now=NOW).pattern_id == "test-retry-automation"


def test_broker_speaks_the_apis_the_worker_needs(services: Services, topic: str) -> None:
    """The broker answers metadata for the test topic with its three partitions."""
    consumer = KafkaConsumer(bootstrap_servers=services.kafka_bootstrap_servers)
    try:
        partitions = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    assert partitions == {0, 1, 2}
