"""The pipeline's loop against an in-memory broker and database (tests/fakes): assignment and
the seek to the stored offsets, revocation during a store, pause and back-off while the
database or the broker fails, stop during a store. Each runs in milliseconds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.fakes.database import FakeDatabase, database_down
from tests.fakes.kafka import FakeDeadLetters, FakeGroupConsumer, LocalBroker, broker_down
from tests.helpers import wait_until
from tests.strategies import example_document
from worker.consume import pipeline as pipeline_module
from worker.consume.pipeline import Pipeline
from worker.contract import json_codec
from worker.errors import CircuitOpenError
from worker.settings import RetryPolicy, Settings
from worker.types import Partition

TOPIC = "events"
P0: Partition = (TOPIC, 0)
P1: Partition = (TOPIC, 1)
TIMEOUT = 10.0  # seconds: for a condition that takes milliseconds when all is well
POLL = 0.001  # seconds between looks at a condition: the fakes answer at once
QUICK = RetryPolicy(first=0.01, maximum=0.02)


@dataclass
class World:
    broker: LocalBroker
    consumer: FakeGroupConsumer
    database: FakeDatabase
    dead_letters: FakeDeadLetters
    pipeline: Pipeline
    thread: threading.Thread
    errors: list[BaseException]
    produced: list[Partition] = field(default_factory=list)

    def produce(self, partition: Partition, count: int) -> None:
        """`count` valid events, each with an event_id of its own."""
        for _ in range(count):
            number = len(self.produced)
            document = example_document(event_id=f"00000000-0000-4000-8000-{number:012d}")
            self.broker.produce(partition, json_codec.dumps(document).encode())
            self.produced.append(partition)

    def ends(self) -> dict[Partition, int]:
        """The end offset of each partition that holds anything."""
        return {p: end for p in (P0, P1) if (end := self.broker.end(p))}

    def run(self) -> None:
        self.thread.start()
        wait_until(
            lambda: self.consumer.joined,
            timeout=TIMEOUT,
            interval=POLL,
            what="the pipeline to join",
        )

    def stop(self) -> None:
        self.pipeline.stop()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the pipeline did not stop"
        assert not self.errors, self.errors


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    # A store that takes long is polled around after this: 20 ms instead of a second.
    monkeypatch.setattr(pipeline_module, "POLL_SLICE_SECONDS", 0.02)
    broker = LocalBroker()
    broker.create_topic(TOPIC, partitions=2)
    consumer = FakeGroupConsumer(broker, TOPIC, "roi-worker")
    database = FakeDatabase("roi-worker")
    dead_letters = FakeDeadLetters()
    settings = Settings(
        database_url="postgresql://roi@localhost/roi",
        topic=TOPIC,
        metrics_host="127.0.0.1",
        metrics_port=0,
        batch_max_seconds=0.01,
    )
    pipeline = Pipeline(
        settings, consumer=consumer, dead_letters=dead_letters, database=database, retry=QUICK
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pipeline.run()
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-pipeline", daemon=True)
    world = World(broker, consumer, database, dead_letters, pipeline, thread, errors)
    yield world
    if thread.is_alive():
        database.release()
        pipeline.stop()
        thread.join(TIMEOUT)


def stored_everything(world: World) -> bool:
    return world.database.offsets == world.ends() and world.broker.committed("roi-worker") == (
        world.ends()
    )


def test_assigned_partitions_are_read_from_their_stored_offsets(world: World) -> None:
    """A newly assigned partition stays paused until it is seeked to the offset the database
    stored (the beginning if none): what was stored before is not read again."""
    world.database.offsets = {P0: 3}
    world.produce(P0, 5)
    world.produce(P1, 2)
    world.run()
    wait_until(
        lambda: stored_everything(world), timeout=TIMEOUT, interval=POLL, what="every event stored"
    )
    assert world.consumer.seeks[0] == {P0: 3, P1: 0}
    assert len(world.database.events) == 4  # offsets 3 and 4 of P0, 0 and 1 of P1
    assert world.pipeline.status.ready() == (True, "ready")
    world.stop()


def test_a_partition_revoked_during_a_store_is_not_committed(world: World) -> None:
    """The batch in flight stores both partitions (the database has them, for the next owner),
    but only the one still owned is committed to Kafka."""
    world.database.hold()
    world.produce(P0, 3)
    world.produce(P1, 3)
    world.run()
    assert world.database.writing.wait(TIMEOUT)
    world.consumer.revoke([P1])
    wait_until(
        lambda: P1 not in world.consumer.assignment(),
        timeout=TIMEOUT,
        interval=POLL,
        what="the revocation",
    )
    world.database.release()
    wait_until(
        lambda: world.broker.committed("roi-worker").get(P0) == 3,
        timeout=TIMEOUT,
        interval=POLL,
        what="P0's offset committed",
    )
    assert world.database.offsets == {P0: 3, P1: 3}
    world.stop()
    assert P1 not in world.broker.committed("roi-worker")


def test_a_database_outage_pauses_every_partition_and_retries_the_batch(world: World) -> None:
    """While PostgreSQL fails the worker is not ready, fetches nothing but keeps polling (so
    it stays in the group), and stores the same batch once it is back: nothing lost, nothing
    twice."""
    world.produce(P0, 2)
    world.run()
    wait_until(
        lambda: stored_everything(world), timeout=TIMEOUT, interval=POLL, what="the first batch"
    )
    world.database.fail_with = database_down()
    world.produce(P0, 2)
    world.produce(P1, 2)
    wait_until(
        lambda: (
            "PostgreSQL is unavailable" in world.pipeline.status.ready()[1]
            and world.consumer.paused() == {P0, P1}
        ),
        timeout=TIMEOUT,
        interval=POLL,
        what="paused and not ready",
    )
    polls = world.consumer.polls
    wait_until(
        lambda: world.consumer.polls > polls + 3, timeout=TIMEOUT, interval=POLL, what="polls"
    )
    world.database.fail_with = None
    wait_until(
        lambda: stored_everything(world), timeout=TIMEOUT, interval=POLL, what="the retried batch"
    )
    wait_until(
        lambda: world.pipeline.status.ready()[0], timeout=TIMEOUT, interval=POLL, what="ready again"
    )
    assert world.consumer.paused() == set()
    assert len(world.database.events) == 6
    assert world.database.connects == 2  # the failed connection was closed, a new one made
    world.stop()


def test_a_dead_letter_topic_outage_stores_nothing_until_the_letter_is_acknowledged(
    world: World,
) -> None:
    """An invalid event whose dead letter the broker does not acknowledge holds its batch back
    (paused, not ready); once the broker is back the letter goes out and the batch is stored."""
    world.dead_letters.fail_with = broker_down()
    world.run()
    world.broker.produce(P0, b"{not json")
    world.produce(P0, 1)
    wait_until(
        lambda: (
            "Kafka is unavailable" in world.pipeline.status.ready()[1]
            and world.consumer.paused() == {P0, P1}
        ),
        timeout=TIMEOUT,
        interval=POLL,
        what="paused and not ready",
    )
    assert world.database.writes == 0
    world.dead_letters.fail_with = None
    wait_until(
        lambda: stored_everything(world), timeout=TIMEOUT, interval=POLL, what="the batch stored"
    )
    assert [letter.message.offset for letter in world.dead_letters.published] == [0]
    assert len(world.database.events) == 1
    world.stop()


def test_stop_during_a_store_waits_for_it_and_commits_it(world: World) -> None:
    """Asked to stop while a batch is being stored, the worker lets the store end and commits
    its offsets to Kafka before it leaves."""
    world.database.hold()
    world.produce(P0, 3)
    world.run()
    assert world.database.writing.wait(TIMEOUT)
    world.pipeline.stop()
    world.database.release()
    world.stop()
    assert world.database.offsets == {P0: 3}
    assert world.broker.committed("roi-worker") == {P0: 3}
    assert world.dead_letters.closed


def test_stop_during_a_store_that_does_not_end_abandons_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store still running when the stop's wait is over has its statement cancelled: nothing
    is stored or committed, and the events are left for re-delivery."""
    monkeypatch.setattr(pipeline_module, "STOP_WAIT_SECONDS", 0.05)
    world.database.hold()
    world.produce(P0, 3)
    world.run()
    assert world.database.writing.wait(TIMEOUT)
    world.stop()
    assert world.database.offsets == {}
    assert world.broker.committed("roi-worker") == {}


def test_the_backoff_follows_the_retry_policy() -> None:
    """LIVE-like doubling from `first`, capped at `maximum`; a policy with attempts gives up,
    and hours of failures do not overflow."""
    policy = RetryPolicy(first=0.5, maximum=5.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(100_000) == 5.0
    backfill = RetryPolicy(first=1.0, maximum=16.0, attempts=6)
    assert [backfill.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 16.0, None]


def test_an_open_circuit_clears_a_stall_so_the_worker_is_not_restarted(world: World) -> None:
    """A stalled worker fails /healthz and gets restarted; once its breaker is open it must
    stay alive holding its partitions, or the next replica is handed the same messages."""
    world.pipeline._status.set_stalled("stalled: events/0 stored nothing for over 60 s")
    world.pipeline._status.set_problem("stalled", "stalled: events/0")
    world.pipeline._stalled_at = 1.0
    world.pipeline._open_circuit(CircuitOpenError("150 invalid", partitions=(P0,), ratio=1.0))
    alive, why = world.pipeline.status.alive()
    assert alive, why
    ready, reason = world.pipeline.status.ready()
    assert not ready
    assert "150 invalid" in reason
    assert "stalled" not in reason
