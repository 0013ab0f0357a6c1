"""The offset ledger and `roi-worker reconcile` against the real database (and, for the worker's
stream, the real broker): every outcome is counted, ranges tile, hand-made damage is named,
a worker that lost its partition overlaps nobody, offsets from before the ledger are
unaudited, and retention keeps the ledger exact."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cli_runner import RoiWorker
from tests.fixtures.services import Services, new_database
from tests.helpers import wait_until
from tests.integration.events import sample_events
from tests.worker_harness import Stream, WorkerProcess, produce, start, wait_caught_up
from worker.consume.prepare import prepare
from worker.consume.store import store
from worker.consume.write import BatchWriter, WriteResult
from worker.contract import json_codec
from worker.db import offsets as stored_offsets
from worker.db.migrate import default_migrations_dir, load_migrations, migrate
from worker.ops.reconcile import Reconciliation, reconcile
from worker.ops.retention import apply_retention
from worker.types import Message

TOPIC = "ledger-topic"
GROUP = "ledger-group"
LOCK_WAIT = 30.0  # seconds a test waits for a backend to block on a lock
NOW = datetime.now(UTC).replace(microsecond=0)
_numbers = iter(range(1, 1_000_000))


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def url(services: Services) -> Iterator[str]:
    """A new, migrated, empty database for one test."""
    with new_database(services, "ledger") as database:
        migrate(database, load_migrations())
        yield database


def document(**changes: Any) -> dict[str, Any]:
    """A valid event with a new event_id, executed a day ago."""
    number = next(_numbers)
    return {
        "schema_version": 1,
        "event_id": str(uuid.UUID(int=number, version=4)),
        "pattern_id": f"pattern-{number % 3}",
        "executed_at": (NOW - timedelta(days=1)).isoformat(),
        "success": True,
        "execution_time_seconds": 10,
        "estimated_time_seconds": 300,
        "actual_cost": "0.40",
        "estimated_cost": "20.00",
        **changes,
    }


def message(partition: int, offset: int, value: dict[str, Any] | bytes) -> Message:
    body = value if isinstance(value, bytes) else json_codec.dumps(value).encode()
    return Message(TOPIC, partition, offset, 0, None, body, [])


def store_batch(
    writer: BatchWriter,
    messages: Sequence[Message],
    before_commit: Callable[[WriteResult], None] | None = None,
) -> WriteResult:
    """Decodes, validates and stores `messages` as the worker does (dead letters unpublished)."""
    batch = prepare(list(messages), now=datetime.now(UTC), closed=0.0)
    if before_commit is None:
        return store(batch, writer, None).result
    letters = [letter.message for letter in batch.letters]
    return writer.write(batch.valid, batch.next_offsets, before_commit, dead_lettered=letters)


def ledger(database_url: str, group: str = GROUP) -> list[tuple[Any, ...]]:
    """(kind, partition, first, next, inserted, duplicates, conflicts, refused, expired,
    dead_lettered, skipped, batches, deleted_by_retention) of each of the group's rows, in
    id order."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT kind, partition, first_offset, next_offset, inserted, duplicates, conflicts,"
            " refused, expired, dead_lettered, skipped, batches, deleted_by_retention"
            " FROM offset_ledger WHERE consumer_group = %s ORDER BY id",
            (group,),
        ).fetchall()


def reconciled(database_url: str, group: str | None = None) -> Reconciliation:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return reconcile(conn, group)


class Writers:
    """Makes BatchWriters, each over a connection of its own, closed at the test's end."""

    def __init__(self) -> None:
        self.connections: list[psycopg.Connection[Any]] = []

    def __call__(self, database_url: str, group: str = GROUP) -> BatchWriter:
        self.connections.append(psycopg.connect(database_url, autocommit=True))
        return BatchWriter(self.connections[-1], group)


@pytest.fixture
def writer() -> Iterator[Writers]:
    made = Writers()
    yield made
    for conn in made.connections:
        conn.close()


def every_outcome(database_url: str, writer: Writers) -> dict[str, dict[str, Any]]:
    """Stores two batches on partitions 0 and 1 with every outcome a message can have, and a
    gap at offset 5 of partition 0; returns the events by name."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO retention_horizon (horizon) VALUES (%s)", (NOW - timedelta(10),))
        conn.execute(
            "ALTER TABLE pattern_executions ADD CONSTRAINT refuse_me "
            "CHECK (workflow_id IS DISTINCT FROM 'refuse-me')"
        )
    events = {name: document() for name in "abcdefgh"}
    conflicting = dict(events["e"], actual_cost="9.99")
    refused = document(workflow_id="refuse-me")
    expired = document(executed_at=(NOW - timedelta(days=20)).isoformat())
    batch_writer = writer(database_url)
    store_batch(
        batch_writer,
        [
            message(0, 0, events["a"]),
            message(0, 1, events["b"]),
            message(0, 2, events["c"]),
            message(0, 3, b"not json"),
            message(0, 4, events["a"]),  # a duplicate
            message(0, 6, events["d"]),  # 5 was never delivered (a transaction marker, say)
            message(1, 0, events["e"]),
            message(1, 1, conflicting),
            message(1, 2, refused),
            message(1, 3, expired),
        ],
    )
    store_batch(
        batch_writer,
        [message(0, 7, events["f"]), message(0, 8, events["g"]), message(1, 4, events["h"])],
    )
    return events


# --------------------------------------------------------------------------- the write path


def test_every_outcome_of_a_batch_is_counted_and_the_ledger_reconciles(
    url: str, roi_worker: RoiWorker, writer: Writers
) -> None:
    """Inserted, duplicate, conflicting, refused, expired, dead-lettered and never-delivered
    offsets each count once, in rows that begin where the group started and tile to the
    stored offsets; reconcile agrees and exits 0."""
    every_outcome(url, writer)
    assert ledger(url) == [
        ("start", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        ("batch", 0, 0, 7, 4, 1, 0, 0, 0, 1, 1, 1, 0),
        ("start", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        ("batch", 1, 0, 4, 1, 0, 1, 1, 1, 0, 0, 1, 0),
        ("batch", 0, 7, 9, 2, 0, 0, 0, 0, 0, 0, 1, 0),
        ("batch", 1, 4, 5, 1, 0, 0, 0, 0, 0, 0, 1, 0),
    ]
    result = reconciled(url)
    assert result.ok, result.problems
    assert [(a.partition, a.start, a.stored, a.batches, a.counts) for a in result.partitions] == [
        (0, 0, 9, 2, [6, 1, 0, 0, 0, 1, 1]),
        (1, 0, 5, 2, [2, 0, 1, 1, 1, 0, 0]),
    ]

    outcome = roi_worker(url, "reconcile")
    assert outcome.code == 0, outcome
    lines = outcome.out.splitlines()
    assert lines[0] == f"group {GROUP} on topic {TOPIC}"
    assert lines[2].split() == [
        *("0", "0", "9", "2", "6", "1", "0", "0", "0", "1", "1", "0", "0", "ok")
    ]
    assert lines[-1] == "every offset accounted for: 2 partitions"
    assert roi_worker(url, "reconcile", "--group", GROUP, "--topic", TOPIC).code == 0


def test_hand_made_gaps_overlaps_and_mismatches_fail_reconcile_naming_them(
    url: str, roi_worker: RoiWorker, writer: Writers
) -> None:
    """A ledger row deleted, a row added over others' offsets, a stored row deleted by hand
    and a row stored behind the ledger's back each make reconcile exit 1 with a line naming
    the topic, partition and offsets; undone, reconcile passes again."""
    every_outcome(url, writer)
    writer(url)
    conn = writer.connections[-1]  # closed at the end, like the writers'
    columns = (
        "consumer_group, topic, partition, kind, first_offset, next_offset, inserted, "
        "duplicates, conflicts, refused, expired, dead_lettered, skipped, batches, written_at"
    )

    def failures() -> list[str]:
        outcome = roi_worker(url, "reconcile")
        assert outcome.code == 1, outcome
        assert outcome.out.splitlines()[-1].startswith("NOT accounted for: ")
        return [
            line
            for line in outcome.out.splitlines()
            if line.startswith(("gap: ", "overlap: ", "mismatch: "))
        ]

    # A gap: the first batch of partition 0 gone (its inserted rows then belong to no batch).
    (row,) = conn.execute(
        f"DELETE FROM offset_ledger WHERE partition = 0 AND kind = 'batch' AND first_offset = 0 "
        f"RETURNING {columns}"
    ).fetchall()
    found = failures()
    assert found[0].startswith(
        f"gap: group {GROUP}, {TOPIC}/0: offsets 0 to 6 (7) have no ledger row (at ledger row"
    )
    assert found[1].startswith(f"mismatch: {TOPIC}/0: 4 stored rows (source offsets 0 to 6,")
    assert found[1].endswith("were inserted by no batch in the ledger")
    assert len(found) == 2
    conn.execute(f"INSERT INTO offset_ledger ({columns}) VALUES ({', '.join(['%s'] * 15)})", row)
    assert roi_worker(url, "reconcile").code == 0

    # An overlap: a row over offsets 3 and 4 of partition 1, which other rows account for.
    conn.execute(
        f"INSERT INTO offset_ledger ({columns}) "
        "VALUES (%s, %s, 1, 'batch', 3, 5, 0, 2, 0, 0, 0, 0, 0, 1, now())",
        (GROUP, TOPIC),
    )
    added, after = row_id(conn, 1, 3), row_id(conn, 1, 4)
    assert failures() == [
        f"overlap: group {GROUP}, {TOPIC}/1: offset 3 (1) is in more than one ledger row (at "
        f"ledger row {added})",
        f"overlap: group {GROUP}, {TOPIC}/1: offset 4 (1) is in more than one ledger row (at "
        f"ledger row {after})",
    ]
    conn.execute("DELETE FROM offset_ledger WHERE id = %s", (added,))
    assert roi_worker(url, "reconcile").code == 0

    # A mismatch: a stored row deleted by hand, not by retention.
    conn.execute("DELETE FROM pattern_executions WHERE source_partition = 0 AND source_offset = 8")
    (found_line,) = failures()
    assert found_line.startswith(f"mismatch: group {GROUP}, {TOPIC}/0: the batch written ")
    assert found_line.endswith(
        "inserted 2 rows from offsets 7 to 8 (2); 1 are stored and 0 were deleted by retention"
    )


def row_id(conn: psycopg.Connection[Any], partition: int, first: int) -> int:
    """The id of the batch row of `partition` that begins at `first`."""
    row = conn.execute(
        "SELECT id FROM offset_ledger "
        "WHERE kind = 'batch' AND partition = %s AND first_offset = %s",
        (partition, first),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_row_stored_behind_the_ledgers_back_is_a_mismatch(
    url: str, roi_worker: RoiWorker, writer: Writers
) -> None:
    """An execution inserted outside any batch since the ledger exists is named, with its
    source offsets."""
    every_outcome(url, writer)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO pattern_executions (event_id, schema_version, pattern_id, executed_at,"
            " success, execution_time_seconds, estimated_time_seconds, actual_cost,"
            " estimated_cost, source_topic, source_partition, source_offset)"
            " VALUES (%s, 1, 'p', now(), true, 1, 2, 0, 1, %s, 1, 3)",
            (uuid.uuid4(), TOPIC),
        )
    outcome = roi_worker(url, "reconcile")
    assert outcome.code == 1
    assert f"mismatch: {TOPIC}/1: 1 stored row (source offsets 3 to 3, ingested " in outcome.out
    # With --group the rows no batch inserted cannot be told: only the ledger is checked.
    assert roi_worker(url, "reconcile", "--group", GROUP).code == 0


def test_a_workers_stream_with_duplicates_invalid_events_and_a_conflict_reconciles(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path, roi_worker: RoiWorker
) -> None:
    """A real worker storing a stream with re-published events, invalid messages and a
    conflicting duplicate leaves a ledger that accounts for every offset with the stream's own
    counts; reconcile exits 0."""
    samples = sample_events(200)
    conflicting = dict(samples[0].document, actual_cost="999.99")
    messages: list[bytes | tuple[bytes, bytes]] = [s.message for s in samples]
    messages += [s.message for s in samples[:50]]  # published again
    messages += [b"not json", b"[1, 2]", b'{"schema_version": 1}', b"\xff\xfe"]
    messages.append((samples[0].key, json_codec.dumps(conflicting).encode()))
    produce(stream.bootstrap_servers, stream.topic, messages)
    worker = start(stream, workers, tmp_path)
    worker.wait_ready()
    wait_caught_up(stream)
    assert worker.stop() == 0

    outcome = roi_worker(stream.database_url, "reconcile")
    assert outcome.code == 0, outcome
    assert outcome.out.splitlines()[-1] == "every offset accounted for: 3 partitions"
    result = reconciled(stream.database_url)
    totals = [sum(audit.counts[i] for audit in result.partitions) for i in range(7)]
    assert totals == [200, 50, 1, 0, 0, 4, 0]
    assert sum(audit.stored or 0 for audit in result.partitions) == len(messages)


# --------------------------------------------------------------------------- lost partitions


def test_a_worker_that_lost_its_partition_never_overlaps_the_new_owner(
    url: str, writer: Writers
) -> None:
    """The old owner finishing batches after the new owner stored further accounts only for
    what is beyond the stored offset (nothing, or the rest), so the ranges still tile."""
    events = [document() for _ in range(40)]
    old, new = writer(url), writer(url)
    store_batch(old, [message(0, o, events[o]) for o in range(10)])
    store_batch(new, [message(0, o, events[o]) for o in range(10, 30)])  # the new owner
    behind = store_batch(old, [message(0, o, events[o]) for o in range(10, 20)])
    assert len(behind.duplicates) == 10
    beyond = store_batch(old, [message(0, o, events[o]) for o in range(10, 40)])
    assert (len(beyond.inserted), len(beyond.duplicates)) == (10, 20)
    assert [row[:6] for row in ledger(url)] == [
        ("start", 0, 0, 0, 0, 0),
        ("batch", 0, 0, 10, 10, 0),
        ("batch", 0, 10, 30, 20, 0),
        ("batch", 0, 30, 40, 10, 0),  # the old owner's last batch, from 30 on only
    ]
    assert reconciled(url).ok


def test_concurrent_owners_read_the_offset_the_other_committed(url: str, writer: Writers) -> None:
    """Two writers of one partition at once: the second waits on the first's lock of the
    stored offset, then starts its range where the first ended, whether the partition's row
    existed (partition 0) or both were creating it (partition 1)."""
    stored = [document() for _ in range(10)]
    events = [document() for _ in range(40)]
    first, second = writer(url), writer(url)
    second_conn = writer.connections[-1]
    store_batch(first, [message(0, o, stored[o]) for o in range(10)])
    with ThreadPoolExecutor(1) as pool:

        def race(result: WriteResult) -> None:
            """Runs in the first writer's transaction, once its offsets are saved: the second
            writer's batch must wait for the commit."""
            del result
            pid = second_conn.info.backend_pid
            done.append(pool.submit(store_batch, second, second_batch))
            wait_until(
                lambda: waiting_on_lock(url, pid), timeout=LOCK_WAIT, what="the second writer"
            )

        # Its messages at 10-19 stand in for events already stored, so that only the stored
        # offset's lock can make it wait; 20-29 and partition 1's 5-9 are new.
        second_batch = [message(0, o, stored[o - 10]) for o in range(10, 20)]
        second_batch += [message(0, o, events[o]) for o in range(20, 30)]
        second_batch += [message(1, o, stored[o]) for o in range(5)]
        second_batch += [message(1, o, events[o]) for o in range(5, 10)]
        done: list[Future[WriteResult]] = []
        first_batch = [message(0, o, events[o]) for o in range(10, 20)]
        first_batch += [message(1, o, stored[o]) for o in range(5)]
        store_batch(first, first_batch, race)
        late = done[0].result(timeout=LOCK_WAIT)
    assert len(late.inserted) == 15
    assert [row[:5] for row in ledger(url)] == [
        ("start", 0, 0, 0, 0),
        ("batch", 0, 0, 10, 10),
        ("batch", 0, 10, 20, 10),
        ("start", 1, 0, 0, 0),
        ("batch", 1, 0, 5, 0),
        ("batch", 0, 20, 30, 10),
        ("batch", 1, 5, 10, 5),
    ]
    assert reconciled(url).ok


def waiting_on_lock(database_url: str, pid: int) -> bool:
    with psycopg.connect(database_url, autocommit=True) as observer:
        row = observer.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return row is not None and row[0] == "Lock"


# --------------------------------------------------------------------------- before the ledger


def test_offsets_stored_before_the_ledger_are_unaudited_not_gaps(
    services: Services, tmp_path: Path, roi_worker: RoiWorker, writer: Writers
) -> None:
    """A database migrated to the ledger from an older release: its stored offsets become
    unaudited rows from 0; offsets an older worker stores after the migration are unaudited
    until a current worker records them; reconcile passes throughout and says so."""
    before = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), before)
    for path in before.glob("*.sql"):
        if path.name >= "0006":
            path.unlink()
    with new_database(services, "preledger") as database:
        migrate(database, load_migrations(before))
        old_events = [document() for _ in range(3)]
        with psycopg.connect(database) as conn:  # what an older release stored
            conn.execute(
                "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) "
                "VALUES (%s, %s, 0, 120), (%s, %s, 1, 0)",
                (GROUP, TOPIC, GROUP, TOPIC),
            )
            for offset, event in zip((117, 118, 119), old_events, strict=True):
                insert_by_hand(conn, event, partition=0, offset=offset)
        migrate(database, load_migrations())
        assert ledger(database) == [("unaudited", 0, 0, 120, *[0] * 9)]
        outcome = roi_worker(database, "reconcile")
        assert outcome.code == 0, outcome
        assert (
            f"unaudited: group {GROUP}, {TOPIC}/0: offsets 0 to 119 (120) stored without a "
            "ledger (before it existed, or by a worker of an older release)"
        ) in outcome.out
        assert outcome.out.splitlines()[-1] == (
            "every offset accounted for: 2 partitions; 120 offsets stored without a ledger are "
            "unaudited"
        )

        # An older worker still running after the migration stores 120-149.
        with psycopg.connect(database) as conn:
            conn.execute("UPDATE consumer_offsets SET next_offset = 150 WHERE partition = 0")
            insert_by_hand(conn, document(), partition=0, offset=130)
        assert reconciled(database).ok
        # Then a current worker.
        events = [document() for _ in range(15)]
        store_batch(
            writer(database),
            [message(0, 150 + o, events[o]) for o in range(10)]
            + [message(1, o, events[10 + o]) for o in range(5)],
        )
        assert [row[:4] for row in ledger(database)] == [
            ("unaudited", 0, 0, 120),
            ("unaudited", 0, 120, 150),
            ("batch", 0, 150, 160),
            ("start", 1, 0, 0),
            ("batch", 1, 0, 5),
        ]
        result = reconciled(database)
        assert result.ok, result.problems
        assert [audit.unaudited for audit in result.partitions] == [150, 0]


def insert_by_hand(
    conn: psycopg.Connection[Any], event: dict[str, Any], *, partition: int, offset: int
) -> None:
    """An execution row as an older release (or a hand) inserts it: no ledger row."""
    conn.execute(
        "INSERT INTO pattern_executions (event_id, schema_version, pattern_id, executed_at,"
        " success, execution_time_seconds, estimated_time_seconds, actual_cost, estimated_cost,"
        " source_topic, source_partition, source_offset)"
        " VALUES (%s, 1, %s, %s, true, 1, 2, 0, 1, %s, %s, %s)",
        (event["event_id"], event["pattern_id"], event["executed_at"], TOPIC, partition, offset),
    )


# --------------------------------------------------------------------------- retention


def test_retention_counts_what_it_deletes_and_merges_old_rows_keeping_the_tiling(
    url: str, writer: Writers
) -> None:
    """Retention counts each deleted execution on its batch's row, so reconcile still matches;
    rows older than the horizon whose executions are all gone merge into one with the same
    range and sums."""
    old = (NOW - timedelta(days=20)).isoformat()
    events = [document(executed_at=old) for _ in range(10)]
    events += [document() for _ in range(4)] + [document(executed_at=old)]
    batch_writer = writer(url)
    for first in (0, 5, 10):
        store_batch(batch_writer, [message(0, o, events[o]) for o in range(first, first + 5)])
    with psycopg.connect(url, autocommit=True) as conn:
        # The first two batches were written a month ago (ledger and executions alike),
        # when the ledger already existed.
        conn.execute("UPDATE schema_migrations SET applied_at = applied_at - interval '60 days'")
        conn.execute(
            "UPDATE offset_ledger SET written_at = written_at - interval '30 days' "
            "WHERE kind = 'batch' AND first_offset < 10"
        )
        conn.execute(
            "UPDATE pattern_executions SET ingested_at = ingested_at - interval '30 days' "
            "WHERE source_offset < 10"
        )
        assert reconcile(conn).ok
        result = apply_retention(conn, NOW - timedelta(days=10), chunk_rows=4)
    assert (result.deleted, result.merged) == (11, 1)
    assert [(r[0], r[2], r[3], r[4], r[11], r[12]) for r in ledger(url)] == [
        ("start", 0, 0, 0, 0, 0),
        ("batch", 0, 10, 10, 2, 10),  # two batches of 5, every row deleted
        ("batch", 10, 15, 5, 1, 1),
    ]
    assert reconciled(url).ok


def test_a_pruned_groups_kept_rows_still_match_and_its_name_can_start_again(
    url: str, writer: Writers
) -> None:
    """Pruning a backfill group deletes its stored offsets and the ledger rows that account for
    nothing stored, and keeps its batch that inserted executions: reconcile walks the other
    groups as before, still matches those executions (a hand-deleted one is a mismatch of the
    pruned group's batch), and a new chain under the same name starts with its own start."""
    events = [document() for _ in range(3)]
    backfill = "roi-backfill-x"
    first = [message(0, offset, events[offset]) for offset in range(3)]
    store_batch(writer(url, backfill), first)  # inserts all three
    store_batch(writer(url, backfill), [message(0, 3, events[0]), message(0, 4, events[1])])
    store_batch(writer(url), first)  # the live group: duplicates
    assert reconciled(url).ok

    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        assert stored_offsets.lock_group(conn, backfill) == {(TOPIC, 0): (5, 5)}
        pruned = stored_offsets.prune_group(conn, backfill)
    assert pruned == stored_offsets.Pruned(partitions=1, ledger_deleted=2, ledger_kept=1)
    assert ledger(url, backfill) == [("batch", 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 1, 0)]
    result = reconciled(url)
    assert result.ok, result.problems
    assert [a.key for a in result.partitions] == [(GROUP, TOPIC, 0)]

    store_batch(writer(url, backfill), [message(0, 5, document())])
    again = reconciled(url)
    assert again.ok, again.problems
    assert [(a.key, a.start, a.stored) for a in again.partitions] == [
        ((GROUP, TOPIC, 0), 0, 3),
        ((backfill, TOPIC, 0), 5, 6),
    ]

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM pattern_executions WHERE event_id = %s", (events[1]["event_id"],))
    broken = reconciled(url)
    assert [(p.kind, p.group) for p in broken.problems] == [("mismatch", backfill)]
    assert broken.problems[0].message.endswith("(a batch of a pruned group)")
    assert broken.pruned == broken.problems
