"""The worker end to end against the real broker and database: store, dead-letter, survive."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.helpers import wait_until
from tests.integration.events import Sample, expected_summary, sample_events
from tests.worker_harness import (
    Stream,
    WorkerProcess,
    end_offsets,
    produce,
    query,
    read_topic,
    start,
    stored_offsets,
    wait_caught_up,
)
from worker.contract import json_codec
from worker.kafka.dead_letters import DeadLetterPublisher
from worker.roi.summaries import find_drift
from worker.types import DeadLetter, Message


def assert_stored_exactly(stream: Stream, samples: list[Sample]) -> None:
    """Every sample stored once, the summaries equal to the methodology and to a recompute."""
    ids = {uuid.UUID(s.document["event_id"]) for s in samples}
    rows = query(stream.database_url, "SELECT event_id FROM pattern_executions")
    assert len(rows) == len(ids)
    assert {row[0] for row in rows} == ids
    summary = query(
        stream.database_url,
        "SELECT pattern_id, total_executions, successful_executions, total_time_saved_seconds,"
        " total_cost_saved_usd FROM pattern_roi_summary",
    )
    assert {row[0]: tuple(row[1:]) for row in summary} == expected_summary(samples)
    with psycopg.connect(stream.database_url) as conn:
        assert find_drift(conn) == []


def test_stores_every_event_once_and_summaries_match(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    samples = sample_events(600)
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    worker = start(stream, workers, tmp_path)
    worker.wait_ready()
    wait_caught_up(stream)
    assert_stored_exactly(stream, samples)
    metrics = worker.metrics()
    assert metrics['roi_worker_messages_total{outcome="inserted"}'] == 600
    assert metrics['roi_pattern_executions_total{pattern_id="pattern-0"}'] == 120
    for partition in range(3):
        assert (
            metrics[f'roi_worker_consumer_lag{{partition="{partition}",topic="{stream.topic}"}}']
            == 0
        )
    assert worker.stop() == 0


def test_a_short_batch_window_still_joins_the_group(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """With ROI_BATCH_MAX_SECONDS=0.1 the worker joins its group and stores everything: polls
    that short never let kafka-python 3.0.12 finish the join, so the worker hung at start-up."""
    samples = sample_events(300)
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    worker = start(stream, workers, tmp_path, ROI_BATCH_MAX_SECONDS="0.1")
    worker.wait_ready()
    wait_caught_up(stream, timeout=30)
    assert_stored_exactly(stream, samples)
    assert worker.stop() == 0


def test_redelivery_reproduction_and_replay_change_nothing(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    samples = sample_events(300)
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    worker = start(stream, workers, tmp_path)
    worker.wait_ready()
    wait_caught_up(stream)
    before = query(stream.database_url, "SELECT * FROM pattern_roi_summary ORDER BY pattern_id")

    # The producer publishes the same events again (a retry after a timeout, say).
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    wait_caught_up(stream)
    assert worker.metrics()['roi_worker_messages_total{outcome="duplicate"}'] == 300
    assert worker.stop() == 0

    # The stored offsets are rewound: the same messages are delivered again.
    with psycopg.connect(stream.database_url) as conn:
        conn.execute("UPDATE consumer_offsets SET next_offset = 0")
    again = start(stream, workers, tmp_path)
    wait_until(
        lambda: again.sample('roi_worker_messages_total{outcome="duplicate"}') == 600,
        timeout=60,
        what="600 duplicates after rewinding",
    )
    assert again.stop() == 0

    # A replay from the beginning with a new group.
    replay = start(stream, workers, tmp_path, ROI_GROUP_ID=f"{stream.group_id}-replay")
    wait_caught_up(stream, group=f"{stream.group_id}-replay")
    assert replay.metrics()['roi_worker_messages_total{outcome="inserted"}'] == 0
    assert replay.stop() == 0

    after = query(stream.database_url, "SELECT * FROM pattern_roi_summary ORDER BY pattern_id")
    assert [row[:-1] for row in after] == [row[:-1] for row in before]  # last_updated aside
    assert_stored_exactly(stream, samples)


def test_invalid_events_go_to_the_dead_letter_topic_with_their_reason(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    valid = sample_events(20)
    conflicting = dict(valid[0].document, actual_cost="999.99")
    invalid = {
        "not_utf8": b"\xff\xfe{}",
        "invalid_json": b'{"schema_version": 1,',
        "not_an_object": b"[1, 2, 3]",
        "unsupported_schema_version": json_codec.dumps(
            dict(valid[1].document, schema_version=2)
        ).encode(),
        "schema_violation": json_codec.dumps(
            {k: v for k, v in valid[2].document.items() if k != "success"}
        ).encode(),
    }
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in valid])
    headers = [("traceparent", b"00-abc-01")]
    produce(
        stream.bootstrap_servers,
        stream.topic,
        [(reason.encode(), value) for reason, value in invalid.items()],
        headers=headers,
    )
    produce(
        stream.bootstrap_servers,
        stream.topic,
        [(b"conflict", json_codec.dumps(conflicting).encode())],
        headers=headers,
    )
    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)

    letters = read_topic(stream.bootstrap_servers, stream.dlq_topic, expected=6)
    assert len(letters) == 6
    by_reason = {}
    for record in letters:
        header = dict(record.headers)
        by_reason[header["roi.error.reason"].decode()] = (record, header)
        assert header["traceparent"] == b"00-abc-01"  # the original headers travel along
        assert header["roi.source.topic"].decode() == stream.topic
        assert int(header["roi.source.partition"]) in range(3)
        assert int(header["roi.source.offset"]) >= 0
        assert int(header["roi.source.timestamp"]) > 0
        assert header["roi.error.message"]
    assert set(by_reason) == {*invalid, "conflicting_duplicate"}
    for reason, value in invalid.items():
        record, header = by_reason[reason]
        assert record.key == reason.encode()
        assert record.value == value
    record, header = by_reason["conflicting_duplicate"]
    assert record.value == json_codec.dumps(conflicting).encode()
    assert b"already stored with different content" in header["roi.error.message"]
    assert b"success: is required" in by_reason["schema_violation"][1]["roi.error.message"]
    assert by_reason["schema_violation"][1]["roi.error.fields"] == b"success:missing"

    assert_stored_exactly(stream, valid)  # the first version of the conflicting event stays
    metrics = worker.metrics()
    assert metrics['roi_worker_messages_total{outcome="invalid"}'] == 5
    assert metrics['roi_worker_messages_total{outcome="conflict"}'] == 1
    assert metrics['roi_worker_dead_letters_total{reason="conflicting_duplicate"}'] == 1
    assert metrics['roi_worker_dead_letters_total{reason="not_utf8"}'] == 1


def test_a_row_the_database_refuses_is_isolated(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    samples = sample_events(200)
    poison = dict(sample_events(1, seed=99)[0].document, workflow_id="poison")
    with psycopg.connect(stream.database_url) as conn:
        conn.execute(
            "ALTER TABLE pattern_executions ADD CONSTRAINT no_poison "
            "CHECK (workflow_id IS DISTINCT FROM 'poison')"
        )
    messages = [s.message for s in samples]
    messages.insert(100, (b"poison", json_codec.dumps(poison).encode()))
    produce(stream.bootstrap_servers, stream.topic, messages)
    worker = start(stream, workers, tmp_path, ROI_BATCH_MAX_SECONDS="2")
    wait_caught_up(stream)

    [letter] = read_topic(stream.bootstrap_servers, stream.dlq_topic, expected=1)
    header = dict(letter.headers)
    assert header["roi.error.reason"] == b"database_rejected"
    assert b"no_poison" in header["roi.error.message"]
    assert_stored_exactly(stream, samples)
    metrics = worker.metrics()
    assert metrics['roi_worker_dead_letters_total{reason="database_rejected"}'] == 1
    # A refused row is `refused`, as in the replay report; not `invalid`.
    assert metrics['roi_worker_messages_total{outcome="refused"}'] == 1
    assert metrics['roi_worker_messages_total{outcome="invalid"}'] == 0
    assert metrics['roi_worker_messages_total{outcome="inserted"}'] == len(samples)


def stored_count(stream: Stream) -> int:
    count: int = query(stream.database_url, "SELECT count(*) FROM pattern_executions")[0][0]
    return count


def start_mid_stream(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path, samples: list[Sample]
) -> WorkerProcess:
    """A worker on a long stream, once it has stored its first batches (small ones)."""
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    worker = start(stream, workers, tmp_path, ROI_BATCH_MAX_MESSAGES="500")
    wait_until(lambda: stored_count(stream) > 0, timeout=60, what="the first batches stored")
    return worker


def test_kill_9_mid_stream_then_restart_stores_everything_once(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    samples = sample_events(20_000)
    start_mid_stream(stream, workers, tmp_path, samples).kill()
    assert stored_count(stream) < len(samples), "the worker finished first; kill it sooner"

    start(stream, workers, tmp_path)
    wait_caught_up(stream)
    assert_stored_exactly(stream, samples)


def test_sigterm_mid_stream_exits_cleanly_and_loses_nothing(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    samples = sample_events(20_000)
    worker = start_mid_stream(stream, workers, tmp_path, samples)
    assert worker.stop(signal.SIGTERM, timeout=10) == 0
    assert "stopped" in worker.log()
    assert stored_count(stream) < len(samples), "the worker finished first; stop it sooner"

    start(stream, workers, tmp_path)
    wait_caught_up(stream)
    assert_stored_exactly(stream, samples)


@pytest.mark.parametrize("stream", [4], indirect=True)
def test_two_workers_in_one_group_count_nothing_twice(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    samples = sample_events(8000)
    first = start_mid_stream(stream, workers, tmp_path, samples[:4000])
    # The second joins while events flow: the rebalance moves partitions mid-batch. The second
    # half goes out once it owns partitions; its keys reach all four partitions.
    second = start(stream, workers, tmp_path, ROI_BATCH_MAX_MESSAGES="500")
    wait_until(lambda: "assigned" in second.log(), timeout=60, what="the second's partitions")
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples[4000:]])
    wait_caught_up(stream)
    assert_stored_exactly(stream, samples)
    inserted = [
        w.metrics()['roi_worker_messages_total{outcome="inserted"}'] for w in (first, second)
    ]
    assert sum(inserted) == len(samples)
    assert all(inserted), f"one worker did all the work: {inserted}"
    assert "revoked" in first.log()


@pytest.mark.parametrize("stream", [4], indirect=True)
def test_a_long_store_does_not_hold_up_a_rebalance(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """While a store waits on a lock, its worker keeps polling (partitions paused), so a
    second worker joining the group gets partitions before the store ends."""
    samples = sample_events(2000)
    first = start(stream, workers, tmp_path, ROI_BATCH_MAX_MESSAGES="500")
    first.wait_ready()
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples[:500]])
    wait_caught_up(stream)
    with psycopg.connect(stream.database_url) as blocker:
        # Every store adds to pattern_roi_summary: this lock holds the next ones (each gives
        # up after lock_timeout, 3 s, and its partitions are read again 5 s later, so the
        # worker keeps storing nothing, and keeps polling, until the lock goes).
        blocker.execute("LOCK TABLE pattern_roi_summary IN EXCLUSIVE MODE")
        produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples[500:1500]])
        wait_until(
            lambda: "takes long; polling with the partitions paused" in first.log(),
            timeout=15,
            what="the first worker to wait for its blocked store while polling",
        )
        second = start(stream, workers, tmp_path, ROI_BATCH_MAX_MESSAGES="500")
        wait_until(
            lambda: "assigned" in second.log(),
            timeout=20,
            what="the second worker's partitions, while the first's store is blocked",
        )
        blocker.rollback()
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples[1500:]])
    wait_caught_up(stream)
    assert_stored_exactly(stream, samples)
    assert "revoked" in first.log()


@pytest.mark.parametrize("stream", [4], indirect=True)
def test_a_worker_storing_back_to_back_lets_another_join(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """With a backlog a store is in flight nearly all the time, so the loop polls in short
    slices between batches; the group protocol must still complete: a second worker joining
    gets partitions while the first is busy, and nothing is counted twice."""
    samples = sample_events(8000)
    batch = 100
    with psycopg.connect(stream.database_url, autocommit=True) as conn:
        # Every store saves its offsets: a quarter of a second more per store makes the
        # first worker alone need at least 80 x 0.25 = 20 s for the backlog.
        conn.execute(
            "CREATE FUNCTION slow_store() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.25); RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE TRIGGER slow_store AFTER INSERT ON consumer_offsets "
            "FOR EACH STATEMENT EXECUTE FUNCTION slow_store()"
        )
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    first = start(stream, workers, tmp_path, ROI_BATCH_MAX_MESSAGES=str(batch))

    def stored() -> int:
        return sum(stored_offsets(stream.database_url, stream.group_id, stream.topic).values())

    wait_until(lambda: stored() > 0, timeout=60, what="the first worker's first batch")
    second = start(stream, workers, tmp_path, ROI_BATCH_MAX_MESSAGES=str(batch))
    wait_until(lambda: "assigned" in second.log(), timeout=60, what="the second's partitions")
    assert stored() < len(samples), "the first worker finished before the second joined"
    with psycopg.connect(stream.database_url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER slow_store ON consumer_offsets")
    wait_caught_up(stream)
    assert_stored_exactly(stream, samples)
    assert "revoked" in first.log()
    # The rebalance is counted as one, not as Kafka errors (a rollout must not page anyone).
    assert (first.sample('roi_worker_rebalances_total{kind="revoked"}') or 0) >= 1
    assert (second.sample('roi_worker_rebalances_total{kind="assigned"}') or 0) >= 1
    for worker in (first, second):
        assert worker.sample("roi_worker_kafka_errors_total") == 0


def test_a_stream_of_garbage_opens_the_circuit_breaker(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The worker stops consuming and says why, but stays up and in the group: nothing stored,
    nothing dead-lettered, not ready, still alive."""
    produce(stream.bootstrap_servers, stream.topic, [b"garbage %d" % i for i in range(300)])
    worker = start(stream, workers, tmp_path)
    wait_until(lambda: circuit_opened(worker), timeout=60, what="the circuit breaker to open")
    status, reason = worker.get("/readyz")
    assert status == 503
    assert "circuit breaker open" in reason
    assert "ROI_DLQ_MAX_RATIO" in reason
    assert worker.get("/healthz")[0] == 200  # a restart would hand the messages on
    assert worker.sample("roi_worker_circuit_open_ratio") == 1.0
    assert worker.sample("roi_worker_ready") == 0
    log = worker.log()
    assert "consumption stopped" in log
    assert "Traceback" not in log
    assert query(stream.database_url, "SELECT count(*) FROM consumer_offsets") == [(0,)]
    assert worker.stop() == 0


@pytest.mark.parametrize("stream", [2], indirect=True)
def test_an_open_breaker_is_not_handed_on_to_the_next_replica(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Two replicas, one partition each; garbage on one partition opens its owner's breaker.
    That worker keeps the partition (it stays in the group), so the other one is never handed
    the garbage: it goes on storing its own partition, and its breaker stays closed."""
    replicas = (start(stream, workers, tmp_path), start(stream, workers, tmp_path))

    def owned(worker: WorkerProcess) -> set[int]:
        return {
            int(name.split('partition="')[1].split('"')[0])
            for name in metrics_of(worker)
            if name.startswith("roi_worker_consumer_lag{")
        }

    def settled() -> bool:  # one partition each, both positioned and ready
        a, b = (owned(worker) for worker in replicas)  # empty until /metrics answers
        split = len(a) == len(b) == 1 and not a & b
        return split and all(worker.get("/readyz")[0] == 200 for worker in replicas)

    wait_until(settled, timeout=90, what="one partition each")
    produce(
        stream.bootstrap_servers, stream.topic, [b"garbage %d" % i for i in range(300)], partition=0
    )
    samples = sample_events(200)
    produce(stream.bootstrap_servers, stream.topic, [s.value for s in samples], partition=1)
    wait_until(lambda: any(map(circuit_opened, replicas)), timeout=60, what="a breaker to open")
    tripped, healthy = replicas if circuit_opened(replicas[0]) else replicas[::-1]
    assert tripped.sample(f'roi_worker_circuit_open{{partition="0",topic="{stream.topic}"}}') == 1
    wait_until(lambda: stored_count(stream) == len(samples), timeout=60, what="the other partition")
    more = sample_events(50, seed=8)
    produce(stream.bootstrap_servers, stream.topic, [s.value for s in more], partition=1)
    wait_until(
        lambda: stored_count(stream) == len(samples) + len(more),
        timeout=60,
        what="the healthy replica to go on storing",
    )
    tripped.check_running()  # still up, still holding partition 0
    assert f'roi_worker_consumer_lag{{partition="0",topic="{stream.topic}"}}' in tripped.metrics()
    assert not circuit_opened(healthy)
    assert healthy.sample("roi_worker_circuit_open_ratio") == 0
    assert healthy.get("/readyz")[0] == 200


def metrics_of(worker: WorkerProcess) -> dict[str, float]:
    """The worker's /metrics; empty while the endpoint is not up yet."""
    worker.check_running()
    try:
        return worker.metrics()
    except OSError:
        return {}


def circuit_opened(worker: WorkerProcess) -> bool:
    return any(
        value == 1
        for name, value in metrics_of(worker).items()
        if name.startswith("roi_worker_circuit_open{")
    )


def test_invalid_events_spread_thinly_do_not_trip_the_breaker(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    samples = sample_events(1000)
    messages: list[tuple[bytes, bytes]] = []
    for index, sample in enumerate(samples):
        messages.append(sample.message)
        if index % 10 == 0:
            messages.append((b"bad", b"not json"))
    produce(stream.bootstrap_servers, stream.topic, messages)
    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)
    assert worker.process.poll() is None
    assert_stored_exactly(stream, samples)
    assert len(read_topic(stream.bootstrap_servers, stream.dlq_topic, expected=100)) == 100


def test_a_missing_topic_is_a_clear_error_at_start_up(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    worker = start(stream, workers, tmp_path, ROI_TOPIC=f"missing-{uuid.uuid4().hex[:6]}")
    assert worker.wait_exit(timeout=60) == 2
    log = worker.log().strip()
    assert "does not exist" in log
    assert "ROI_CREATE_TOPICS=true" in log
    assert "Traceback" not in log


def test_a_value_too_large_to_forward_is_dead_lettered_without_it(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    huge = b"x" * 1_040_000  # fits the broker's limit, not with the dead-letter headers added
    producer = KafkaProducer(bootstrap_servers=stream.bootstrap_servers, max_request_size=2**21)
    try:
        producer.send(stream.topic, key=b"big", value=huge).get(timeout=30)
    finally:
        producer.close()
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in sample_events(10)])
    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)

    [letter] = read_topic(stream.bootstrap_servers, stream.dlq_topic, expected=1)
    headers = dict(letter.headers)
    assert letter.key == b"big"
    assert letter.value == b""
    assert headers["roi.error.value_dropped_bytes"] == str(len(huge)).encode()
    assert headers["roi.error.reason"] == b"invalid_json"
    assert worker.process.poll() is None
    assert query(stream.database_url, "SELECT count(*) FROM pattern_executions") == [(10,)]


def test_dead_letters_of_records_kafka_python_cannot_produce(stream: Stream) -> None:
    """Other clients may publish null header values, or neither key nor value; the consumer
    hands those over as None, which the producer refuses as they are."""
    producer = KafkaProducer(bootstrap_servers=stream.bootstrap_servers, acks="all")
    publisher = DeadLetterPublisher(lambda: producer, stream.dlq_topic, timeout=30)
    try:
        publisher.publish(
            [
                DeadLetter(Message(stream.topic, 0, 1, 0, b"k", b"{", [("h", None)]), "r", "e"),
                DeadLetter(Message(stream.topic, 0, 2, 0, None, None, []), "r", "e"),
            ]
        )
    finally:
        producer.close()
    letters = read_topic(stream.bootstrap_servers, stream.dlq_topic, expected=2)
    assert dict(letters[0].headers)["h"] == b""
    assert (letters[1].key, letters[1].value) == (None, b"")


def test_a_partition_without_a_stored_offset_starts_from_the_beginning(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The database decides: Kafka's committed offsets (here: at the end) are ignored when the
    database has nothing for the group, e.g. after it was restored empty."""
    samples = sample_events(100)
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    consumer = KafkaConsumer(
        bootstrap_servers=stream.bootstrap_servers,
        group_id=stream.group_id,
        enable_auto_commit=False,
    )
    try:
        partitions = [TopicPartition(stream.topic, p) for p in range(3)]
        ends = consumer.end_offsets(partitions)
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in ends.items()})
    finally:
        consumer.close()
    start(stream, workers, tmp_path)
    wait_caught_up(stream)
    assert_stored_exactly(stream, samples)


def test_stored_offsets_beyond_the_end_stop_the_worker(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The topic was recreated: resuming at the stored offset would skip its events."""
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in sample_events(10)])
    with psycopg.connect(stream.database_url) as conn:
        conn.execute(
            "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) "
            "VALUES (%s, %s, 0, 5000)",
            (stream.group_id, stream.topic),
        )
    worker = start(stream, workers, tmp_path)
    assert worker.wait_exit(timeout=60) == 1
    log = worker.log()
    assert "beyond the end of the topic" in log
    assert f"{stream.topic}/0: stored 5000" in log
    assert "Traceback" not in log
    assert query(stream.database_url, "SELECT count(*) FROM pattern_executions") == [(0,)]


def test_events_deleted_by_retention_before_they_were_stored_are_reported(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path, kafka_admin: KafkaAdminClient
) -> None:
    samples = sample_events(30)
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    with psycopg.connect(stream.database_url) as conn:
        conn.execute(
            "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) "
            "VALUES (%s, %s, 0, 0)",
            (stream.group_id, stream.topic),
        )
    deleted = min(3, end_offsets(stream.bootstrap_servers, stream.topic)[0])
    assert deleted > 0, "no event landed on partition 0; pick other keys"
    kafka_admin.delete_records({TopicPartition(stream.topic, 0): deleted})  # as retention does
    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)
    lost = f"{stream.topic}/0: offsets 0 to {deleted - 1} were deleted by the topic's retention"
    assert lost in worker.log()
    assert stored_count(stream) == len(samples) - deleted
    assert (worker.sample("roi_worker_kafka_errors_total") or 0) >= 1
