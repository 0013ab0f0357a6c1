"""What the consumers make of what a topic can hold, against the real broker: committed
transactions only, every compression codec, and records the Kafka client cannot decode
(dead-lettered as undecodable_record, never a stalled partition)."""

from __future__ import annotations

import threading
import uuid
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.serializer import Deserializer

from tests.fixtures.services import SERVICE_TIMEOUT, Services, create_topic, delete_topics
from tests.helpers import wait_until
from tests.integration.events import Sample, sample_events
from tests.integration.test_pipeline import assert_stored_exactly
from tests.worker_harness import (
    Stream,
    WorkerProcess,
    end_offsets,
    read_topic,
    start,
    stored_offsets,
    wait_caught_up,
)
from worker.kafka.client import RecordReader, new_consumer
from worker.kafka.topic_range import open_consumer
from worker.ops.replay import Replay, plan_replay
from worker.settings import KafkaSettings, Settings
from worker.types import Message

Headers = list[tuple[str, bytes]]


class RawHeaderKey(str):
    """A header key kafka-python's producer writes as these bytes. It takes str keys only and
    encodes them as UTF-8; other clients send whatever bytes they are given."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawHeaderKey:
        key = super().__new__(cls, "raw")
        key.raw = raw
        return key

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


NOT_UTF8: Headers = [(RawHeaderKey(b"\xff\xfetrace"), b"1")]


def batch_producer(stream: Stream) -> KafkaProducer:
    """A producer whose sends up to each flush form one record batch per partition."""
    return KafkaProducer(bootstrap_servers=stream.bootstrap_servers, acks="all", linger_ms=5000)


def send_batch(
    producer: KafkaProducer,
    topic: str,
    partition: int,
    values: Sequence[bytes | Sample],
    headers: dict[int, Headers] | None = None,
) -> list[int]:
    """Sends `values` to `partition` as one record batch (`headers` by index); their offsets."""
    futures = [
        producer.send(
            topic,
            key=None if isinstance(value, bytes) else value.key,
            value=value if isinstance(value, bytes) else value.value,
            partition=partition,
            headers=(headers or {}).get(index, []),
        )
        for index, value in enumerate(values)
    ]
    producer.flush(timeout=30)
    return [future.get(timeout=0).offset for future in futures]


def check_undecodable_letters(stream: Stream, expected: set[tuple[int, int]], error: str) -> None:
    """The dead-letter topic holds exactly one undecodable_record letter per expected
    (partition, offset): no key, an empty value, the source headers and the client's error."""
    letters = read_topic(stream.bootstrap_servers, stream.dlq_topic, expected=len(expected))
    assert len(letters) == len(expected)
    found = set()
    for letter in letters:
        headers = dict(letter.headers)
        assert headers["roi.error.reason"] == b"undecodable_record"
        assert error in headers["roi.error.message"].decode()
        assert headers["roi.source.topic"].decode() == stream.topic
        assert "roi.source.timestamp" not in headers  # unknown: the record was not read
        assert (letter.key, letter.value) == (None, b"")
        found.add((int(headers["roi.source.partition"]), int(headers["roi.source.offset"])))
    assert found == expected


def check_worker(worker: WorkerProcess, undecodable: int) -> None:
    metrics = worker.metrics()
    assert metrics['roi_worker_dead_letters_total{reason="undecodable_record"}'] == undecodable
    assert metrics['roi_worker_messages_total{outcome="invalid"}'] == undecodable
    log = worker.log()
    assert "cannot decode" in log
    assert "Traceback" not in log
    assert worker.stop() == 0


def replay_settings(stream: Stream, **overrides: Any) -> Settings:
    return Settings(
        kafka_bootstrap_servers=stream.bootstrap_servers,
        database_url=stream.database_url,
        topic=stream.topic,
        dlq_topic=stream.dlq_topic,
        batch_max_messages=7,  # several batches, the undecodable ones among them
        **overrides,
    )


def replay_counts(stream: Stream) -> dict[int, tuple[int, int, int, bool]]:
    """Replays the whole topic with a new group: per partition (inserted, duplicates,
    invalid, read to its end)."""
    settings = replay_settings(stream)
    consumer = open_consumer(settings, "roi-test-replay", **settings.consumer_fetch_config())
    try:
        plan = plan_replay(consumer, stream.topic, "beginning")
        Replay(settings, plan, f"{stream.group_id}-replay").run(consumer)
    finally:
        consumer.close()
    return {p.partition: (p.inserted, p.duplicates, p.invalid, p.done) for p in plan.partitions}


# --------------------------------------------------------------------------- transactions


def test_events_of_aborted_transactions_are_never_stored(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """A transactional producer's aborted events are neither stored nor counted, its committed
    ones are, and the stored offsets still reach each partition's end (transaction markers
    take offsets), also when an aborted transaction ends a partition."""
    samples = sample_events(90)
    aborted, committed, aborted_last = samples[:30], samples[30:60], samples[60:]
    producer = KafkaProducer(
        bootstrap_servers=stream.bootstrap_servers, transactional_id=f"roi-test-{uuid.uuid4()}"
    )
    try:
        producer.init_transactions()
        for events, commit in ((aborted, False), (committed, True), (aborted_last, False)):
            producer.begin_transaction()
            for sample in events:
                producer.send(stream.topic, key=sample.key, value=sample.value)
            producer.flush(timeout=30)
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close(timeout=10)

    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)  # to the partitions' high watermarks: every marker included
    assert_stored_exactly(stream, committed)
    ends = end_offsets(stream.bootstrap_servers, stream.topic)
    assert stored_offsets(stream.database_url, stream.group_id, stream.topic) == ends
    metrics = worker.metrics()
    assert metrics['roi_worker_messages_total{outcome="inserted"}'] == len(committed)
    assert metrics['roi_worker_messages_total{outcome="invalid"}'] == 0
    for partition in ends:
        lag = f'roi_worker_consumer_lag{{partition="{partition}",topic="{stream.topic}"}}'
        assert metrics[lag] == 0
    assert worker.stop() == 0

    # A replay reads the committed events only, as duplicates.
    replayed = replay_counts(stream)
    assert sum(duplicates for _, duplicates, _, _ in replayed.values()) == len(committed)
    assert all(
        done and not inserted and not invalid for inserted, _, invalid, done in replayed.values()
    )


# --------------------------------------------------------------------------- codecs


@pytest.fixture
def compressed_topic(
    stream: Stream, kafka_admin: KafkaAdminClient, request: pytest.FixtureRequest
) -> Iterator[Stream]:
    """The stream on a topic whose broker-side compression.type is request.param: the broker
    recompresses whatever producers send to it."""
    name = f"roi-test-{request.param}-{uuid.uuid4().hex[:8]}"
    kafka_admin.create_topics(
        [NewTopic(name, 3, 1, topic_configs={"compression.type": request.param})]
    )
    wait_until(lambda: name in kafka_admin.list_topics(), timeout=SERVICE_TIMEOUT, what=name)
    yield Stream(
        stream.bootstrap_servers, name, stream.dlq_topic, stream.group_id, stream.database_url
    )
    delete_topics(kafka_admin, name)


@pytest.mark.parametrize("compressed_topic", ["gzip", "snappy", "lz4", "zstd"], indirect=True)
def test_every_compression_codec_kafka_defines_is_read(
    compressed_topic: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The worker stores every event of a topic the broker compresses with each codec."""
    samples = sample_events(101)
    producer = batch_producer(compressed_topic)
    try:
        for partition in range(3):
            send_batch(producer, compressed_topic.topic, partition, samples[partition::3])
    finally:
        producer.close(timeout=10)
    worker = start(compressed_topic, workers, tmp_path)
    wait_caught_up(compressed_topic)
    assert_stored_exactly(compressed_topic, samples)
    assert worker.stop() == 0


# --------------------------------------------------------------------------- undecodable


def test_a_header_key_that_is_not_utf8_is_dead_lettered_and_passed(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """A record whose header key is not UTF-8 is dead-lettered as undecodable_record, and so is
    each record after it in its record batch (the client cannot read those either); every
    other event is stored once and every stored offset reaches its partition's end."""
    samples = sample_events(40)
    producer = batch_producer(stream)
    try:
        send_batch(producer, stream.topic, 0, samples[0:10])
        [alone] = send_batch(producer, stream.topic, 0, [b"bad header"], {0: NOT_UTF8})
        send_batch(producer, stream.topic, 0, samples[10:20])
        mid_batch = send_batch(
            producer,
            stream.topic,
            1,
            [samples[20], b"bad", samples[21], samples[22]],
            {1: NOT_UTF8},
        )
        send_batch(producer, stream.topic, 1, samples[23:30])
        send_batch(producer, stream.topic, 2, samples[30:40])
    finally:
        producer.close(timeout=10)

    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)
    assert_stored_exactly(stream, samples[:21] + samples[23:])
    undecodable = {(0, alone), *((1, offset) for offset in mid_batch[1:])}
    check_undecodable_letters(stream, undecodable, "UnicodeDecodeError")
    check_worker(worker, undecodable=len(undecodable))

    # A replay reads past them too, counting them invalid (live workers dead-letter them).
    assert replay_counts(stream) == {0: (0, 20, 1, True), 1: (0, 8, 3, True), 2: (0, 10, 0, True)}


def broker_log_dir(admin: KafkaAdminClient, topic: str, partition: int) -> Path:
    [broker] = admin.describe_log_dirs(topic_partitions=[topic])
    [log_dir] = [d["log_dir"] for d in broker["log_dirs"] if d["topics"]]
    path = Path(log_dir) / f"{topic}-{partition}"
    if not path.is_dir():
        pytest.skip(f"the broker's log directory {log_dir} is not on this machine")
    return path


def corrupt_on_disk(admin: KafkaAdminClient, topic: str, partition: int, marker: bytes) -> None:
    """Changes one byte of `marker` where the broker keeps it, as a failing disk would: the
    broker serves the segment as it is, and the record batch's CRC no longer matches."""
    for segment in broker_log_dir(admin, topic, partition).glob("*.log"):
        data = segment.read_bytes()
        at = data.find(marker)
        if at >= 0:
            with segment.open("r+b") as file:
                file.seek(at)
                file.write(marker.upper()[:1])
            return
    raise AssertionError(f"{marker!r} is in no segment of {topic}/{partition}")


def test_a_record_batch_corrupted_on_the_broker_is_dead_lettered_and_passed(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path, kafka_admin: KafkaAdminClient
) -> None:
    """A record batch whose CRC fails (a byte changed on the broker's disk) is dead-lettered
    offset by offset as undecodable_record; every other event is stored once and every stored
    offset reaches its partition's end."""
    samples = sample_events(30)
    marker = f"corrupt-me-{uuid.uuid4().hex}".encode()
    producer = batch_producer(stream)
    try:
        send_batch(producer, stream.topic, 2, samples[0:10])
        corrupted = send_batch(producer, stream.topic, 2, [samples[10], marker, samples[11]])
        send_batch(producer, stream.topic, 2, samples[12:20])
        send_batch(producer, stream.topic, 0, samples[20:25])
        send_batch(producer, stream.topic, 1, samples[25:30])
    finally:
        producer.close(timeout=10)
    corrupt_on_disk(kafka_admin, stream.topic, 2, marker)

    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)
    assert_stored_exactly(stream, samples[:10] + samples[12:])
    check_undecodable_letters(stream, {(2, offset) for offset in corrupted}, "failed crc check")
    check_worker(worker, undecodable=len(corrupted))


def test_a_decode_error_deferred_past_a_pause_never_hangs_the_reader(
    services: Services, kafka_admin: KafkaAdminClient
) -> None:
    """poll() returns one partition's records and keeps the other's decode error for the next
    call; paused and resumed meanwhile, kafka-python 3.0.12 then looped inside poll() for ever.
    The reader gets the error back and turns it into the undecodable offset."""
    topic = create_topic(kafka_admin, "reads", 2)
    try:
        producer = KafkaProducer(bootstrap_servers=services.kafka_bootstrap_servers, linger_ms=50)
        try:
            send_batch(producer, topic, 0, [b"%d" % i for i in range(5)])
            send_batch(producer, topic, 1, [b"bad", b"after"], {0: NOT_UTF8})
            send_batch(producer, topic, 1, [b"next"])
        finally:
            producer.close(timeout=10)
        settings = KafkaSettings(kafka_bootstrap_servers=services.kafka_bootstrap_servers)
        consumer = new_consumer(settings, group_id=None, enable_auto_commit=False)
        read: list[Message] = []
        done = threading.Event()

        def read_all() -> None:
            reader = RecordReader(consumer)
            partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, 0)
            read.extend(reader.poll(timeout_ms=2000, max_records=100))
            consumer.pause(partitions[1])
            read.extend(reader.poll(timeout_ms=200, max_records=100))
            consumer.resume(partitions[1])
            while len(read) < 8:
                read.extend(reader.poll(timeout_ms=200, max_records=100))
            done.set()

        thread = threading.Thread(target=read_all, daemon=True)
        thread.start()
        try:
            assert done.wait(60), "the reader hung"
        finally:
            consumer.close()
        by_offset = {(m.partition, m.offset): m for m in read}
        assert sorted(by_offset) == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 2)]
        assert [by_offset[1, o].undecodable is not None for o in range(3)] == [True, True, False]
        assert by_offset[1, 2].value == b"next"
    finally:
        delete_topics(kafka_admin, topic)


class FailsOnce(Deserializer):  # type: ignore[misc]  # untyped base
    """Fails on the first value it sees, as a damaged fetch would; reads every other."""

    def __init__(self) -> None:
        self.failed = False

    def deserialize(self, topic: str, headers: Any, data: bytes) -> bytes:
        if not self.failed:
            self.failed = True
            raise zlib.error("invalid block type")
        return data


def test_a_failure_no_partition_reproduces_is_polled_again(
    services: Services, kafka_admin: KafkaAdminClient
) -> None:
    """When poll() fails on a record once but every partition reads fine again (a fetch
    damaged on the way), nothing is dead-lettered: the reader polls again and reads it all."""
    topic = create_topic(kafka_admin, "reads", 2)
    try:
        producer = KafkaProducer(bootstrap_servers=services.kafka_bootstrap_servers)
        try:
            send_batch(producer, topic, 0, [b"a"])
            send_batch(producer, topic, 1, [b"b"])
        finally:
            producer.close(timeout=10)
        settings = KafkaSettings(kafka_bootstrap_servers=services.kafka_bootstrap_servers)
        consumer = new_consumer(
            settings, group_id=None, enable_auto_commit=False, value_deserializer=FailsOnce()
        )
        read: list[Message] = []
        try:
            reader = RecordReader(consumer)
            partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, 0)

            def both_read() -> bool:
                read.extend(reader.poll(timeout_ms=500, max_records=100))
                return len(read) >= 2

            wait_until(both_read, timeout=30, what="both records")
        finally:
            consumer.close()
        assert sorted((m.partition, m.value) for m in read) == [(0, b"a"), (1, b"b")]
        assert all(m.undecodable is None for m in read)
    finally:
        delete_topics(kafka_admin, topic)
