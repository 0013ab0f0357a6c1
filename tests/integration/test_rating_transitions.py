"""Rating transitions: recorded in the transaction that detects them, published once.

The database side runs BatchWriter and the sweep directly; the publishing side runs real
`roi-worker run` processes against a real broker: two replicas in one group, and a SIGKILL of
the replica holding the publisher's lock. A pattern is driven good -> failed -> good (with
ROI_MIN_EXECUTIONS=1, so that however the phases are cut into batches no other rating is seen
in between) and the ratings topic must hold exactly those transitions, in order, once deduped on
(pattern_id, sequence).
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from jsonschema import Draft202012Validator
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from tests.cli_runner import RoiWorker
from tests.fixtures.services import Services, create_topic, delete_topics
from tests.helpers import CountingCursor, wait_until
from tests.integration.events import Sample
from tests.worker_harness import Stream, WorkerProcess, produce, query, start, wait_caught_up
from worker.consume.ratings import record_changes, sweep
from worker.consume.ratings_publisher import RatingsPublisher
from worker.consume.write import BatchWriter, ValidEvent
from worker.contract.validate import validate
from worker.db import ratings
from worker.db.migrate import load_migrations, migrate
from worker.errors import DatabaseUnavailableError
from worker.roi.rating_state import event_schema
from worker.roi.summaries import find_drift
from worker.settings import load_settings
from worker.types import Source

FLIP = "flip/pattern"
TIMEOUT = 90.0


def document(
    pattern_id: str, *, success: bool, actual: str, estimated: str, at: datetime | None = None
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "pattern_id": pattern_id,
        "executed_at": (at or datetime.now(UTC)).isoformat(),
        "success": success,
        "execution_time_seconds": 10,
        "estimated_time_seconds": 60,
        "actual_cost": actual,
        "estimated_cost": estimated,
    }


# With min_executions 1, every prefix of a phase rates the same as the whole phase:
# good: 10 successes that save their cost once over (ROI 100 %, success rate 1);
# failed: one failure whose cost wipes out every saving (ROI < 0, success rate 10/11);
# good again: one success saving far more than was lost (success rate 11/12 < 0.95).
def good_phase(pattern_id: str = FLIP) -> list[dict[str, Any]]:
    return [document(pattern_id, success=True, actual="1.00", estimated="2.00") for _ in range(10)]


def failed_phase(pattern_id: str = FLIP) -> list[dict[str, Any]]:
    return [document(pattern_id, success=False, actual="1000.00", estimated="2.00")]


def recovery_phase(pattern_id: str = FLIP) -> list[dict[str, Any]]:
    return [document(pattern_id, success=True, actual="1.00", estimated="100000.00")]


EXPECTED_FLIP = [(1, None, "good"), (2, "good", "failed"), (3, "failed", "good")]


# --------------------------------------------------------------------------- the database side


@pytest.fixture(scope="module")
def migrated(database_url: str) -> str:
    migrate(database_url, load_migrations())
    return database_url


@pytest.fixture
def conn(migrated: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(migrated, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE pattern_executions, pattern_roi_summary, pattern_roi_daily, "
            "consumer_offsets, offset_ledger, pattern_rating_state, pattern_rating_transitions"
        )
        yield connection


class Writer:
    """A BatchWriter over its own connection, with offsets that move on by themselves."""

    def __init__(self, url: str, min_executions: int = 1) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.writer = BatchWriter(self.conn, "ratings-test", min_executions=min_executions)
        self.offset = 0
        self.partition = random.randrange(1_000_000)

    def write(self, documents: list[dict[str, Any]], **kwargs: Any) -> None:
        now = datetime.now(UTC) + timedelta(minutes=1)
        items = []
        for doc in documents:
            items.append(
                ValidEvent.of(validate(doc, now=now), Source("t", self.partition, self.offset))
            )
            self.offset += 1
        self.writer.write(items, {("t", self.partition): self.offset}, **kwargs)

    def close(self) -> None:
        self.conn.close()


def history(conn: psycopg.Connection[Any], pattern_id: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT sequence, old_rating, new_rating FROM pattern_rating_transitions "
        "WHERE pattern_id = %s ORDER BY sequence",
        (pattern_id,),
    ).fetchall()


def test_each_batch_records_the_changes_it_makes_once(
    migrated: str, conn: psycopg.Connection[Any]
) -> None:
    """good -> failed -> good, batch by batch: one transition per change, none for a batch
    that changes nothing, none for a redelivered batch, and the state row follows."""
    writer = Writer(migrated)
    try:
        first = good_phase()
        writer.write(first[:4])
        writer.write(first[4:])  # still good: nothing new
        writer.write(failed_phase())
        writer.write(recovery_phase())
        writer.offset = 0
        writer.write(first[:4])  # redelivered: nothing inserted, nothing recorded
    finally:
        writer.close()
    assert history(conn, FLIP) == EXPECTED_FLIP
    state = ratings.read_states(conn, [FLIP])[FLIP]
    assert (state.rating, state.snapshot_status, state.sequence) == ("good", None, 3)
    figures = conn.execute(
        "SELECT executions, successful_executions, cost_saved_usd, investment_usd "
        "FROM pattern_rating_transitions WHERE pattern_id = %s AND sequence = 2",
        (FLIP,),
    ).fetchone()
    assert figures is not None
    assert figures[:2] == (11, 10)
    assert str(figures[2]) == "-990.00"
    assert str(figures[3]) == "1010.00"
    assert find_drift(conn) == []


def test_a_batch_that_rolls_back_records_nothing(
    migrated: str, conn: psycopg.Connection[Any]
) -> None:
    """The transition is part of the batch's transaction: a batch that fails before its commit
    leaves no transition, and its retry records it once."""
    writer = Writer(migrated)

    def fail(result: object) -> None:
        raise DatabaseUnavailableError("the dead-letter topic is down")

    try:
        phase = good_phase()
        with pytest.raises(DatabaseUnavailableError):
            writer.write(phase, before_commit=fail)
        assert history(conn, FLIP) == []
        writer.offset = 0
        writer.write(phase)
    finally:
        writer.close()
    assert history(conn, FLIP) == [(1, None, "good")]


def test_the_sweep_records_first_states_and_what_time_alone_changes(
    migrated: str, conn: psycopg.Connection[Any]
) -> None:
    """Patterns stored before the ratings existed get their first state from the sweep, and a
    pattern reaching day 30 without new events gets its snapshot status as a transition."""
    day0 = date(2026, 1, 5)
    at = datetime(2026, 1, 5, 12, tzinfo=UTC)
    writer = Writer(migrated)
    try:
        docs = [
            document("aging", success=True, actual="1.00", estimated="2.00", at=at + timedelta(d))
            for d in range(30)
            for _ in range(2)
        ]
        writer.write(docs)
    finally:
        writer.close()
    # As if stored before migration 0009: no state, no transition.
    conn.execute("TRUNCATE pattern_rating_state, pattern_rating_transitions")
    assert sweep(conn, 1, today=day0 + timedelta(days=29)) == 1
    assert sweep(conn, 1, today=day0 + timedelta(days=29)) == 0
    assert sweep(conn, 1, today=day0 + timedelta(days=31)) == 1
    rows = conn.execute(
        "SELECT sequence, old_rating, old_snapshot_status, new_rating, new_snapshot_status "
        "FROM pattern_rating_transitions WHERE pattern_id = 'aging' ORDER BY sequence"
    ).fetchall()
    assert rows[0] == (1, None, None, "good", None)
    assert rows[1][:4] == (2, "good", None, "good")
    assert rows[1][4] is not None  # the day-30 snapshot's status


def test_a_late_event_in_the_latest_window_moves_the_status_in_its_batch(
    migrated: str, conn: psycopg.Connection[Any]
) -> None:
    """A batch judges the latest window as stored with its own rows: late events inside it
    move the status at once; live events after it leave the status as it was."""
    start = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    start -= timedelta(days=35)  # day 30 is complete: its window is days 0..29
    writer = Writer(migrated)
    try:
        writer.write(
            [
                document("late", success=True, actual="1.00", estimated="2.00", at=at)
                for at in (start + timedelta(days=d, hours=h) for d in range(30) for h in (0, 1))
            ]
        )
        late = start + timedelta(days=20)
        writer.write([document("late", success=False, actual="1000.00", estimated="2.00", at=late)])
        writer.write([document("late", success=True, actual="1.00", estimated="2.00")])
    finally:
        writer.close()
    rows = conn.execute(
        "SELECT sequence, new_rating, new_snapshot_status FROM pattern_rating_transitions "
        "WHERE pattern_id = 'late' ORDER BY sequence"
    ).fetchall()
    assert rows == [(1, "good", "on_track"), (2, "failed", "off_track")]


def test_a_batch_reads_no_window_of_a_pattern_before_day_30(
    migrated: str, conn: psycopg.Connection[Any]
) -> None:
    """The state of a pattern younger than 30 days is one statement; a pattern at day 30 or
    later adds the read of its windows."""
    old = datetime.now(UTC) - timedelta(days=40)
    writer = Writer(migrated)
    try:
        writer.write(good_phase("young"))
        writer.write([document("old", success=True, actual="1.00", estimated="2.00", at=old)])
    finally:
        writer.close()
    conn.cursor_factory = CountingCursor
    try:
        for patterns, statements in ((["young"], 1), (["old"], 2), (["young", "old"], 2)):
            CountingCursor.statements.clear()
            with conn.transaction():
                assert record_changes(conn, patterns, 1) == []  # the batches recorded them
            assert len(CountingCursor.statements) == statements, patterns
    finally:
        conn.cursor_factory = psycopg.Cursor


def test_a_state_recorded_by_someone_else_first_is_retried_not_repeated(
    migrated: str, conn: psycopg.Connection[Any]
) -> None:
    """record refuses a transition whose previous sequence is no longer the state's: the
    batch retries (DatabaseUnavailableError) rather than record a repeated sequence."""
    writer = Writer(migrated)
    try:
        writer.write(good_phase())
    finally:
        writer.close()
    with conn.transaction():
        record_changes(conn, [FLIP], 1)  # unchanged: nothing to record
    zero = Decimal(0)
    stale = ratings.TransitionRow(FLIP, 1, None, None, "failed", None, 1, 0, zero, zero)
    with pytest.raises(DatabaseUnavailableError), conn.transaction():
        ratings.record(conn, [stale])
    assert history(conn, FLIP) == [(1, None, "good")]


def test_concurrent_writers_and_the_sweep_keep_every_chain_whole(
    migrated: str, conn: psycopg.Connection[Any]
) -> None:
    """Two writers storing overlapping patterns in any order while a sweep runs: no deadlock,
    and each pattern's transitions are 1, 2, 3, ... each starting where the last one ended."""
    patterns = [f"race-{n}" for n in range(6)]
    errors: list[BaseException] = []
    done = threading.Event()

    def write(seed: int) -> None:
        rng = random.Random(seed)
        writer = Writer(migrated)
        try:
            for _ in range(25):
                docs = []
                for pattern in rng.sample(patterns, 4):
                    docs += rng.choice([good_phase, failed_phase, recovery_phase])(pattern)[:3]
                rng.shuffle(docs)
                writer.write(docs)
        except BaseException as exc:
            errors.append(exc)
        finally:
            writer.close()

    def sweeping() -> None:
        with psycopg.connect(migrated, autocommit=True) as own:
            while not done.is_set():
                try:
                    sweep(own, 1)
                except BaseException as exc:
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=write, args=(seed,)) for seed in (1, 2)]
    sweeper = threading.Thread(target=sweeping)
    sweeper.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    sweeper.join(30)
    assert errors == []
    rows = conn.execute(
        "SELECT pattern_id, sequence, old_rating, old_snapshot_status, new_rating, "
        "new_snapshot_status FROM pattern_rating_transitions ORDER BY pattern_id, sequence"
    ).fetchall()
    chains: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        chains.setdefault(row[0], []).append(row[1:])
    assert set(chains) == set(patterns)
    for pattern, chain in chains.items():
        assert [c[0] for c in chain] == list(range(1, len(chain) + 1)), pattern
        for before, after in itertools.pairwise(chain):
            assert after[1:3] == before[3:5], pattern  # old = the previous new
    states = conn.execute("SELECT pattern_id, sequence FROM pattern_rating_state").fetchall()
    assert dict(states) == {p: len(c) for p, c in chains.items()}


# --------------------------------------------------------------------------- the publishing side


@pytest.fixture
def ratings_topic(kafka_admin: KafkaAdminClient) -> Iterator[str]:
    name = create_topic(kafka_admin, "ratings", 3)
    yield name
    delete_topics(kafka_admin, name)


def topic_events(bootstrap_servers: str, topic: str) -> list[dict[str, Any]]:
    """Every record of `topic` up to its end now, in offset order per partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[Any] = []

        def read_to_end() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            return all(consumer.position(tp) >= end for tp, end in ends.items())

        wait_until(read_to_end, timeout=30, what=f"{topic} read to its end")
    finally:
        consumer.close()
    events = []
    for record in records:
        event = json.loads(record.value)
        assert record.key == event["pattern_id"].encode()
        events.append(event)
    return events


def deduped(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per pattern, the first copy of each sequence, in the order they arrived."""
    seen: set[tuple[str, int]] = set()
    found: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        key = (event["pattern_id"], event["sequence"])
        if key not in seen:
            seen.add(key)
            found.setdefault(event["pattern_id"], []).append(event)
    return found


def flips(events: list[dict[str, Any]]) -> list[tuple[int, str | None, str]]:
    return [(e["sequence"], e["old"] and e["old"]["rating"], e["new"]["rating"]) for e in events]


def wait_state(stream: Stream, sequence: int) -> None:
    def recorded() -> bool:
        rows = query(
            stream.database_url,
            "SELECT sequence FROM pattern_rating_state WHERE pattern_id = %s",
            (FLIP,),
        )
        return bool(rows) and bool(rows[0][0] >= sequence)

    wait_until(recorded, timeout=TIMEOUT, what=f"{FLIP}'s state {sequence} to be recorded")


def wait_all_sent(stream: Stream, workers: list[WorkerProcess]) -> None:
    def sent() -> bool:
        for worker in workers:
            worker.check_running()  # fail at once, with its log, if a publisher died
        rows = query(
            stream.database_url,
            "SELECT count(*) FILTER (WHERE sent_at IS NULL) FROM pattern_rating_transitions",
        )
        return bool(rows[0][0] == 0)

    wait_until(sent, timeout=TIMEOUT, what="every rating transition to be acknowledged")


def holder(workers: list[WorkerProcess]) -> WorkerProcess:
    """The one running replica whose roi_rating_publisher_active is 1 (and no other's is)."""

    def one() -> WorkerProcess | None:
        running = [w for w in workers if w.process.poll() is None]
        active = [w for w in running if w.sample("roi_rating_publisher_active") == 1.0]
        return active[0] if len(active) == 1 else None

    return wait_until(one, timeout=TIMEOUT, what="exactly one replica to hold the publisher lock")


def drive(stream: Stream, noise: list[dict[str, Any]], phases: list[list[dict[str, Any]]]) -> None:
    """Produces each phase (with a share of `noise`) once the previous one's state is recorded."""
    share = -(-len(noise) // len(phases))
    for number, phase in enumerate(phases, start=1):
        batch = phase + noise[(number - 1) * share : number * share]
        produce(stream.bootstrap_servers, stream.topic, [messages(d) for d in batch])
        wait_state(stream, number)


def messages(doc: dict[str, Any]) -> tuple[bytes, bytes]:
    sample = Sample(doc)
    return sample.key, sample.value


def noise_events() -> list[dict[str, Any]]:
    """Other patterns on every partition, so both replicas store and record something."""
    return [
        document(f"steady-{n}", success=True, actual="1.00", estimated="2.00")
        for n in range(12)
        for _ in range(5)
    ]


def assert_published_once_in_order(stream: Stream, topic: str, noise: list[dict[str, Any]]) -> None:
    events = topic_events(stream.bootstrap_servers, topic)
    found = deduped(events)
    assert flips(found[FLIP]) == EXPECTED_FLIP
    steady = {d["pattern_id"] for d in noise}
    assert set(found) == steady | {FLIP}
    for pattern in steady:
        assert flips(found[pattern]) == [(1, None, "good")]
    recorded = query(stream.database_url, "SELECT count(*) FROM pattern_rating_transitions")
    assert sum(len(v) for v in found.values()) == recorded[0][0]
    with psycopg.connect(stream.database_url) as conn:
        assert find_drift(conn) == []


def test_two_replicas_publish_each_transition_once_in_order(
    stream: Stream, workers: list[WorkerProcess], ratings_topic: str, tmp_path: Path
) -> None:
    """Two `roi-worker run` in one group: one holds the lock and publishes; the topic holds the
    pattern's good -> failed -> good transitions in order, and every other pattern's first."""
    env = {"ROI_RATINGS_TOPIC": ratings_topic, "ROI_MIN_EXECUTIONS": "1"}
    for _ in range(2):
        start(stream, workers, tmp_path, **env)
    for worker in workers:
        worker.wait_ready()
    holder(workers)
    noise = noise_events()
    drive(stream, noise, [good_phase(), failed_phase(), recovery_phase()])
    wait_caught_up(stream)
    wait_all_sent(stream, workers)
    assert_published_once_in_order(stream, ratings_topic, noise)
    assert sum(w.sample("roi_rating_publisher_active") or 0 for w in workers) == 1
    wait_until(
        lambda: all(w.sample("roi_rating_transitions_unsent") == 0 for w in workers),
        timeout=10,
        what="every replica's roi_rating_transitions_unsent to reach 0",
    )
    for worker in workers:
        assert worker.stop(signal.SIGTERM) == 0


def test_a_killed_publisher_is_taken_over_and_nothing_is_skipped(
    stream: Stream, workers: list[WorkerProcess], ratings_topic: str, tmp_path: Path
) -> None:
    """SIGKILL of the replica holding the lock, between the phases: the other takes the lock
    within seconds and publishes the rest; after deduping on (pattern_id, sequence) the topic
    holds every transition, in order, without a gap."""
    env = {"ROI_RATINGS_TOPIC": ratings_topic, "ROI_MIN_EXECUTIONS": "1"}
    for _ in range(2):
        start(stream, workers, tmp_path, **env)
    for worker in workers:
        worker.wait_ready()
    noise = noise_events()
    drive(stream, noise[:30], [good_phase()])
    killed = holder(workers)
    killed.process.send_signal(signal.SIGKILL)
    killed.wait_exit(10)
    survivor = holder(workers)
    assert survivor is not killed
    phases = [failed_phase(), recovery_phase()]
    produce(stream.bootstrap_servers, stream.topic, [messages(d) for d in phases[0] + noise[30:]])
    wait_state(stream, 2)
    produce(stream.bootstrap_servers, stream.topic, [messages(d) for d in phases[1]])
    wait_state(stream, 3)
    wait_caught_up(stream)
    wait_all_sent(stream, [survivor])
    assert_published_once_in_order(stream, ratings_topic, noise)
    assert survivor.stop(signal.SIGTERM) == 0


def test_a_publisher_killed_with_transitions_waiting_leaves_none_behind(
    stream: Stream,
    workers: list[WorkerProcess],
    kafka_admin: KafkaAdminClient,
    tmp_path: Path,
) -> None:
    """The holder is SIGKILLed while its transitions wait (the ratings topic does not exist
    yet, so it could publish none): once the topic exists the other replica, which took the
    lock, publishes every one of them and the later ones, in order."""
    topic = f"roi-test-ratings-{uuid.uuid4().hex[:8]}"
    env = {"ROI_RATINGS_TOPIC": topic, "ROI_MIN_EXECUTIONS": "1"}
    try:
        for _ in range(2):
            start(stream, workers, tmp_path, **env)
        for worker in workers:
            worker.wait_ready()
        noise = noise_events()
        drive(stream, noise[:30], [good_phase()])
        wait_caught_up(stream)
        killed = holder(workers)
        unsent = query(
            stream.database_url,
            "SELECT count(*) FROM pattern_rating_transitions WHERE sent_at IS NULL",
        )
        assert unsent[0][0] == 7  # the pattern's first state and the six steady ones
        killed.process.send_signal(signal.SIGKILL)
        killed.wait_exit(10)
        kafka_admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        survivor = holder(workers)
        phases = [failed_phase(), recovery_phase()]
        produce(
            stream.bootstrap_servers, stream.topic, [messages(d) for d in phases[0] + noise[30:]]
        )
        wait_state(stream, 2)
        produce(stream.bootstrap_servers, stream.topic, [messages(d) for d in phases[1]])
        wait_state(stream, 3)
        wait_caught_up(stream)
        wait_all_sent(stream, [survivor])
        assert_published_once_in_order(stream, topic, noise)
        assert survivor.stop(signal.SIGTERM) == 0
    finally:
        delete_topics(kafka_admin, topic)


def test_the_ratings_command_lists_the_transitions(
    migrated: str, conn: psycopg.Connection[Any], roi_worker: RoiWorker
) -> None:
    """`roi-worker ratings`: one line per transition, oldest first, with whether it was sent;
    --format json prints the events as published, which the schema accepts."""
    writer = Writer(migrated)
    try:
        writer.write(good_phase())
        writer.write(failed_phase())
        writer.write(good_phase("other"))
    finally:
        writer.close()
    conn.execute("UPDATE pattern_rating_transitions SET sent_at = now() WHERE sequence = 1")
    text = roi_worker(migrated, "ratings", "--pattern-id", FLIP)
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"{FLIP} #1: (first) -> good/no snapshot  (10 executions)  sent")
    assert lines[1].endswith("#2: good/no snapshot -> failed/no snapshot  (11 executions)  unsent")
    latest = roi_worker(migrated, "ratings", "--limit", "1", "--format", "json")
    assert latest.code == 0, latest.err
    [line] = latest.out.splitlines()
    event = json.loads(line)
    assert event.pop("sent_at") is not None
    assert (event["pattern_id"], event["sequence"]) == ("other", 1)
    assert list(Draft202012Validator(event_schema()).iter_errors(event)) == []
    none = roi_worker(migrated, "ratings", "--pattern-id", "unknown")
    assert (none.code, none.out) == (0, "no rating transitions recorded for unknown\n")


def test_a_transition_whose_mark_was_lost_is_sent_again_identically(
    services: Services,
    migrated: str,
    conn: psycopg.Connection[Any],
    ratings_topic: str,
) -> None:
    """The crash between the broker's acknowledgement and `sent_at`: the next publisher sends
    the same (pattern_id, sequence) again, byte for byte, and in order; nothing is skipped."""
    writer = Writer(migrated)
    try:
        writer.write(good_phase())
        writer.write(failed_phase())
    finally:
        writer.close()
    settings = load_settings(
        database_url=migrated,
        kafka_bootstrap_servers=services.kafka_bootstrap_servers,
        ratings_topic=ratings_topic,
    )
    publisher = RatingsPublisher(settings, threading.Event())
    try:
        assert publisher.publish_once(conn) == 2
        assert publisher.publish_once(conn) == 0  # marked: nothing left
        conn.execute("UPDATE pattern_rating_transitions SET sent_at = NULL")  # the lost mark
        assert publisher.publish_once(conn) == 2
    finally:
        publisher.close()
    events = topic_events(services.kafka_bootstrap_servers, ratings_topic)
    assert [(e["sequence"], e["new"]["rating"]) for e in events] == [
        (1, "good"),
        (2, "failed"),
        (1, "good"),
        (2, "failed"),
    ]
    assert events[:2] == events[2:]
    assert flips(deduped(events)[FLIP]) == EXPECTED_FLIP[:2]
