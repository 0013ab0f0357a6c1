"""`roi-worker offsets show|reset` against real Kafka, PostgreSQL and `roi-worker run` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from tests.cli_runner import Outcome, remove_roi_settings, run_in_process
from tests.fixtures.services import Services
from tests.helpers import wait_until
from tests.integration.events import Sample, sample_events
from tests.worker_harness import (
    Stream,
    WorkerProcess,
    end_offsets,
    produce,
    start,
    stored_offsets,
    wait_caught_up,
)
from worker.ops.offsets import (
    EARLIEST,
    GroupActiveError,
    PlanOutdatedError,
    ResetTarget,
    execute_reset,
    plan_reset,
)
from worker.ops.reconcile import reconcile
from worker.roi.summaries import find_drift
from worker.settings import load_settings

ROOT = Path(__file__).parents[2]
GROUP_TIMEOUT = 30.0  # seconds the group coordinator may take to show a join or a leave
METRIC_TIMEOUT = 30.0


OffsetsCommand = Callable[..., Outcome]


@pytest.fixture
def offsets(
    stream: Stream, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> OffsetsCommand:
    """Runs `roi-worker offsets ARGS` in-process with the stream's ROI_* settings."""
    remove_roi_settings(monkeypatch)
    for name, value in stream.env().items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> Outcome:
        return run_in_process(capsys, ["offsets", *args])

    return run


def committed(admin: KafkaAdminClient, stream: Stream) -> dict[int, int]:
    """The group's committed offsets in Kafka, read without the code under test."""
    found = admin.list_group_offsets({stream.group_id: None}).get(stream.group_id, {})
    return {tp.partition: m.offset for tp, m in found.items() if tp.topic == stream.topic}


def members(admin: KafkaAdminClient, group: str) -> int:
    return len(admin.describe_groups([group])[group]["members"])


def summaries(url: str) -> tuple[list[tuple[Any, ...]], int]:
    """Every summary row, and the number of stored executions; asserts there is no drift."""
    with psycopg.connect(url) as conn:
        assert find_drift(conn) == []
        rows = conn.execute("SELECT * FROM pattern_roi_summary ORDER BY pattern_id").fetchall()
        executions = conn.execute("SELECT count(*) FROM pattern_executions").fetchone()
    assert executions is not None
    return rows, int(executions[0])


def store_all(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path, samples: Iterable[Sample]
) -> WorkerProcess:
    """Starts a worker, publishes `samples` and waits until it has stored every one."""
    worker = start(stream, workers, tmp_path)
    worker.wait_ready()
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    wait_caught_up(stream)
    return worker


def wait_for_sample(worker: WorkerProcess, name: str, value: float) -> None:
    wait_until(
        lambda: worker.sample(name) == value, timeout=METRIC_TIMEOUT, what=f"{name} == {value}"
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_show_gives_stored_committed_and_end_offsets_and_zero_lag_once_stored(
    stream: Stream,
    workers: list[WorkerProcess],
    tmp_path: Path,
    kafka_admin: KafkaAdminClient,
    offsets: OffsetsCommand,
) -> None:
    """After a worker has stored a stream, show reports stored == Kafka committed == end and
    lag 0 on every partition, in text and JSON, and the worker as a live member."""
    store_all(stream, workers, tmp_path, sample_events(300))
    ends = end_offsets(stream.bootstrap_servers, stream.topic)
    written = {p: end for p, end in ends.items() if end}
    wait_until(
        lambda: committed(kafka_admin, stream) == written,
        timeout=GROUP_TIMEOUT,
        what="the worker's Kafka commits",
    )

    shown = offsets("show", "--format", "json")
    assert shown.code == 0, shown.err
    document = json.loads(shown.out)
    assert document["group"] == stream.group_id
    assert document["topic"] == stream.topic
    assert document["live_members"] == 1
    assert document["total_lag"] == 0
    assert document["partitions"] == [
        {
            "partition": p,
            "stored_offset": written.get(p),
            "committed_offset": written.get(p),
            "first_offset": 0,
            "end_offset": end,
            "lag": 0,
        }
        for p, end in sorted(ends.items())
    ]

    text = offsets("show")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0].startswith(f"group {stream.group_id} on topic {stream.topic}: 1 live member")
    assert lines[1].split() == ["partition", "stored", "committed", "first", "end", "lag"]
    for line, (p, end) in zip(lines[2:], sorted(ends.items()), strict=False):
        stored = str(end) if end else "-"
        assert line.split() == [str(p), stored, stored, "0", str(end), "0"]
    assert lines[-1].split() == ["total", "0"]


def test_reset_is_refused_while_a_worker_is_in_the_group(
    stream: Stream,
    workers: list[WorkerProcess],
    tmp_path: Path,
    kafka_admin: KafkaAdminClient,
    offsets: OffsetsCommand,
) -> None:
    """reset --execute with a running worker exits 1 with one line naming the live member and
    the group state, and changes neither the stored nor the committed offsets."""
    store_all(stream, workers, tmp_path, sample_events(100))
    wait_until(
        lambda: members(kafka_admin, stream.group_id) == 1,
        timeout=GROUP_TIMEOUT,
        what="the worker to be in the group",
    )
    before = stored_offsets(stream.database_url, stream.group_id, stream.topic)
    kafka_before = committed(kafka_admin, stream)

    refused = offsets("reset", "--to-earliest", "--execute")

    assert refused.code == 1
    assert refused.out == ""
    line = one_line(refused.err)
    assert line.startswith(f"roi-worker: error: group {stream.group_id} has 1 live member (state")
    assert "nothing changed" in line
    assert stored_offsets(stream.database_url, stream.group_id, stream.topic) == before
    assert committed(kafka_admin, stream) == kafka_before

    dry_run = offsets("reset", "--to-earliest")  # the plan still shows, with a warning
    assert dry_run.code == 0, dry_run.err
    assert "--execute refuses until all of its workers are stopped" in dry_run.out

    # A plan made anyway is refused by the check inside the reset's transaction.
    settings = load_settings()
    plan = plan_reset(settings, stream.group_id, stream.topic, EARLIEST)
    with pytest.raises(GroupActiveError, match="1 live member"):
        execute_reset(settings, plan)
    assert stored_offsets(stream.database_url, stream.group_id, stream.topic) == before
    assert committed(kafka_admin, stream) == kafka_before


def test_reset_to_earliest_plans_then_applies_and_a_replay_only_finds_duplicates(
    stream: Stream,
    workers: list[WorkerProcess],
    tmp_path: Path,
    kafka_admin: KafkaAdminClient,
    offsets: OffsetsCommand,
) -> None:
    """With the worker stopped, reset --to-earliest without --execute changes nothing; with it,
    both stored and committed offsets go back to the first offsets, and a restarted worker
    re-reads everything as duplicates, leaving the summaries exactly as they were."""
    samples = sample_events(300)
    worker = store_all(stream, workers, tmp_path, samples)
    assert worker.stop() == 0
    wait_until(
        lambda: members(kafka_admin, stream.group_id) == 0,
        timeout=GROUP_TIMEOUT,
        what="the stopped worker to leave the group",
    )
    before = stored_offsets(stream.database_url, stream.group_id, stream.topic)
    assert committed(kafka_admin, stream) == before
    rows_before, executions = summaries(stream.database_url)
    assert executions == len(samples)
    partitions = sorted(end_offsets(stream.bootstrap_servers, stream.topic))

    planned = offsets("reset", "--to-earliest")
    assert planned.code == 0, planned.err
    assert planned.out.splitlines()[-1] == "nothing changed: add --execute to apply"
    assert f"{len(samples):,} messages to read again" in planned.out
    assert stored_offsets(stream.database_url, stream.group_id, stream.topic) == before
    assert committed(kafka_admin, stream) == before

    applied = offsets("reset", "--to-earliest", "--execute")
    assert applied.code == 0, applied.err
    assert applied.out.splitlines()[-1].startswith(f"applied: group {stream.group_id}")
    assert stored_offsets(stream.database_url, stream.group_id, stream.topic) == dict.fromkeys(
        partitions, 0
    )
    assert committed(kafka_admin, stream) == dict.fromkeys(partitions, 0)
    shown = json.loads(offsets("show", "--format", "json").out)
    assert shown["total_lag"] == len(samples)

    again = start(stream, workers, tmp_path)
    wait_caught_up(stream)
    wait_for_sample(again, 'roi_worker_messages_total{outcome="duplicate"}', len(samples))
    assert again.metrics()['roi_worker_messages_total{outcome="inserted"}'] == 0
    assert summaries(stream.database_url) == (rows_before, executions)
    assert stored_offsets(stream.database_url, stream.group_id, stream.topic) == before
    assert again.stop() == 0

    # The offset ledger records each move, so reconcile explains the offsets read twice.
    with psycopg.connect(stream.database_url, autocommit=True) as conn:
        audit = reconcile(conn, stream.group_id, stream.topic)
        resets = conn.execute(
            "SELECT partition, first_offset, next_offset FROM offset_ledger "
            "WHERE kind = 'reset' ORDER BY partition"
        ).fetchall()
    assert audit.ok, audit.problems
    assert resets == sorted(
        (p, before.get(p, 0), 0) for p in partitions if before.get(p) or p not in before
    )
    assert [a.moves for a in audit.partitions] == [1] * len(resets)


def test_a_reset_whose_plan_is_out_of_date_changes_nothing(
    stream: Stream, kafka_admin: KafkaAdminClient, offsets: OffsetsCommand
) -> None:
    """When the stored offsets move between planning and executing, the reset refuses and
    writes nothing, neither in PostgreSQL nor in Kafka."""
    del offsets  # sets the ROI_* variables load_settings reads
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in sample_events(30)])
    save = (
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)"
        " VALUES (%s, %s, 0, %s) ON CONFLICT (consumer_group, topic, partition)"
        " DO UPDATE SET next_offset = excluded.next_offset"
    )
    with psycopg.connect(stream.database_url, autocommit=True) as conn:
        conn.execute(save, (stream.group_id, stream.topic, 5))
        settings = load_settings()
        plan = plan_reset(settings, stream.group_id, stream.topic, EARLIEST)
        conn.execute(save, (stream.group_id, stream.topic, 7))  # as a late batch would

    with pytest.raises(PlanOutdatedError, match="partition 0: planned from 5, now 7"):
        execute_reset(settings, plan)

    assert stored_offsets(stream.database_url, stream.group_id, stream.topic) == {0: 7}
    assert committed(kafka_admin, stream) == {}


def produce_at(stream: Stream, samples: Iterable[Sample], timestamp_ms: int) -> dict[int, int]:
    """Publishes `samples` with one explicit timestamp; partition -> first offset used."""
    producer = KafkaProducer(bootstrap_servers=stream.bootstrap_servers, acks="all")
    try:
        futures = [
            producer.send(stream.topic, key=s.key, value=s.value, timestamp_ms=timestamp_ms)
            for s in samples
        ]
        producer.flush(timeout=60)
        first: dict[int, int] = {}
        for future in futures:
            record = future.get(timeout=0)
            first[record.partition] = min(first.get(record.partition, record.offset), record.offset)
    finally:
        producer.close(timeout=10)
    return first


def test_reset_to_datetime_picks_the_first_offset_at_or_after_the_moment(
    stream: Stream,
    workers: list[WorkerProcess],
    tmp_path: Path,
    kafka_admin: KafkaAdminClient,
    offsets: OffsetsCommand,
) -> None:
    """reset --to-datetime sets each partition to its first message stamped at or after the
    moment (the end where there is none), and a restarted worker re-reads exactly those."""
    samples = sample_events(200)
    older, newer = samples[:120], samples[120:]
    now_ms = int(time.time() * 1000)
    older_ms, newer_ms = now_ms - 7_200_000, now_ms - 3_600_000  # two hours and one hour ago
    produce_at(stream, older, older_ms)
    newer_first = produce_at(stream, newer, newer_ms)
    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)
    assert worker.stop() == 0
    wait_until(
        lambda: members(kafka_admin, stream.group_id) == 0,
        timeout=GROUP_TIMEOUT,
        what="the stopped worker to leave the group",
    )
    ends = end_offsets(stream.bootstrap_servers, stream.topic)
    expected = {p: newer_first.get(p, end) for p, end in ends.items()}
    assert sum(ends[p] - expected[p] for p in ends) == len(newer)

    settings = load_settings()
    later = datetime.fromtimestamp(newer_ms / 1000, UTC) + timedelta(milliseconds=1)
    after_all = plan_reset(settings, stream.group_id, stream.topic, ResetTarget(later))
    assert {p.partition: p.new for p in after_all.partitions} == ends

    moment = datetime.fromtimestamp(newer_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    applied = offsets("reset", "--to-datetime", moment, "--execute")
    assert applied.code == 0, applied.err
    assert f"{len(newer):,} messages to read again" in applied.out
    assert stored_offsets(stream.database_url, stream.group_id, stream.topic) == expected
    assert committed(kafka_admin, stream) == expected

    rows_before = summaries(stream.database_url)
    again = start(stream, workers, tmp_path)
    wait_caught_up(stream)
    wait_for_sample(again, 'roi_worker_messages_total{outcome="duplicate"}', len(newer))
    assert again.metrics()['roi_worker_messages_total{outcome="inserted"}'] == 0
    assert summaries(stream.database_url) == rows_before
    assert again.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("reset", "--to-datetime", "2026-11-20T00:00:00"),
            "argument --to-datetime: '2026-11-20T00:00:00' has no timezone offset",
        ),
        (
            ("reset", "--to-datetime", "2026-11-20"),
            "argument --to-datetime: '2026-11-20' has no timezone offset",
        ),
        (
            ("reset", "--to-earliest", "--to-datetime", "2026-11-20T00:00:00Z"),
            "argument --to-datetime: not allowed with argument --to-earliest",
        ),
        (("reset",), "one of the arguments --to-earliest --to-datetime is required"),
        (("reset", "--to-earliest", "--topic", "roi-test-missing"), "does not exist"),
        (("show", "--topic", "roi-test-missing"), "topic 'roi-test-missing' does not exist"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(
    services: Services, args: tuple[str, ...], message: str
) -> None:
    """A naive datetime, both targets or none, and an unknown topic each print one line without
    a traceback and exit 2, as the real command."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
    environment["ROI_KAFKA_BOOTSTRAP_SERVERS"] = services.kafka_bootstrap_servers
    environment["ROI_DATABASE_URL"] = services.database_url
    result = subprocess.run(
        [sys.executable, "-m", "worker", "offsets", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert message in one_line(result.stderr)


def age_group(url: str, group: str, days: int) -> None:
    """Moves back by `days` every timestamp of `group`'s rows: its stored offsets, its ledger
    rows and the executions its batches inserted (reconcile matches those by time)."""
    shift = "make_interval(days => %(days)s)"
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            f"UPDATE pattern_executions p SET ingested_at = p.ingested_at - {shift} "
            "FROM offset_ledger l WHERE l.consumer_group = %(group)s AND l.kind = 'batch' "
            "AND (p.source_topic, p.source_partition, p.ingested_at) "
            "= (l.topic, l.partition, l.written_at)",
            {"group": group, "days": days},
        )
        for table, column in (("consumer_offsets", "updated_at"), ("offset_ledger", "written_at")):
            conn.execute(
                f"UPDATE {table} SET {column} = {column} - {shift} "
                "WHERE consumer_group = %(group)s",
                {"group": group, "days": days},
            )


def group_rows(url: str) -> dict[str, tuple[int, list[tuple[Any, ...]]]]:
    """Per group: its consumer_offsets rows, and its ledger rows (id, kind, inserted, pruned)."""
    with psycopg.connect(url) as conn:
        stored: dict[str, int] = dict(
            conn.execute("SELECT consumer_group, count(*) FROM consumer_offsets GROUP BY 1")
        )
        ledger: dict[str, list[tuple[Any, ...]]] = {}
        for group, *row in conn.execute(
            "SELECT consumer_group, id, kind, inserted, pruned_at IS NOT NULL "
            "FROM offset_ledger ORDER BY id"
        ):
            ledger.setdefault(group, []).append(tuple(row))
    return {g: (stored.get(g, 0), ledger.get(g, [])) for g in sorted({*stored, *ledger})}


def test_prune_deletes_only_stale_groups_and_reconcile_still_accounts_for_every_row(
    *,
    stream: Stream,
    workers: list[WorkerProcess],
    tmp_path: Path,
    kafka_admin: KafkaAdminClient,
    offsets: OffsetsCommand,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An old backfill that inserted every event, a recent one and the live group (idle, its
    rows as old as the first): the plan lists all three and changes nothing; --execute deletes
    only the old backfill's offsets and the ledger rows that account for nothing stored, keeps
    its batch rows (reconcile needs them: without them the stored rows are unexplained), and
    leaves reconcile clean. The live group is kept unless named, and refused while a member of
    it is live."""
    old, recent = "roi-backfill-old", "roi-backfill-recent"
    samples = sample_events(120)
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    for group in (old, recent):  # the first inserts every event, the second finds duplicates
        replayed = run_in_process(capsys, ["replay", "--from-beginning", "--group", group])
        assert replayed.code == 0, replayed.err
    start(stream, workers, tmp_path)
    wait_caught_up(stream)
    wait_until(
        lambda: members(kafka_admin, stream.group_id) == 1,
        timeout=GROUP_TIMEOUT,
        what="the worker to be in the group",
    )
    with psycopg.connect(stream.database_url, autocommit=True) as conn:
        # The ledger existed before these rows, so reconcile checks them all.
        conn.execute("UPDATE schema_migrations SET applied_at = applied_at - interval '100 days'")
    for group in (old, stream.group_id):
        age_group(stream.database_url, group, 40)
    before = group_rows(stream.database_url)
    assert sorted(before) == sorted([old, recent, stream.group_id])
    old_partitions, old_ledger = before[old]
    inserting = [row for row in old_ledger if row[1] == "batch" and row[2] > 0]
    assert sum(row[2] for row in inserting) == len(samples)

    planned = offsets("prune", "--older-than", "30d")
    assert planned.code == 0, planned.err
    lines = planned.out.splitlines()
    assert lines[0].startswith("plan: prune the groups with no row written for 30 days")
    assert lines[1].split() == [
        "group", "last", "activity", "offsets", "ledger", "rows", "executions", "action"
    ]  # fmt: skip
    actions = {line.split()[0]: line.split("  ")[-1].strip() for line in lines[2:5]}
    assert actions == {
        old: "prune",
        stream.group_id: "keep: the live group (ROI_GROUP_ID): name it with --group to prune it",
        recent: actions[recent],
    }
    assert actions[recent].startswith("keep: active ")
    assert lines[5] == (
        f"1 of 3 groups to prune: {old_partitions} stored offsets and "
        f"{len(old_ledger) - len(inserting)} ledger rows to delete; {len(inserting)} ledger rows "
        f"stay, marked pruned, for the {len(samples)} stored executions they inserted "
        "(reconcile still matches them)"
    )
    assert lines[-1] == "nothing changed: add --execute to apply"
    assert group_rows(stream.database_url) == before

    applied = offsets("prune", "--older-than", "30d", "--execute")
    assert applied.code == 0, applied.err
    assert applied.out.splitlines()[-2:] == [
        f"pruned: group {old}: {old_partitions} stored offsets and "
        f"{len(old_ledger) - len(inserting)} ledger rows deleted, {len(inserting)} ledger rows "
        "kept (marked pruned)",
        "applied: 1 group pruned",
    ]
    after = group_rows(stream.database_url)
    assert after[old] == (0, [(*row[:3], True) for row in inserting])
    assert {g: rows for g, rows in after.items() if g != old} == {
        g: rows for g, rows in before.items() if g != old
    }
    with psycopg.connect(stream.database_url, autocommit=True) as conn:
        audit = reconcile(conn)
    assert audit.ok, audit.problems
    assert {a.group for a in audit.partitions} == {recent, stream.group_id}
    assert audit.unaudited_rows == 0

    # Named, the live group is judged like any other: stale in the database, live in Kafka.
    shown = offsets("prune", "--older-than", "30d", "--group", stream.group_id)
    assert shown.code == 0, shown.err
    assert "keep: 1 live member (state Stable)" in shown.out
    refused = offsets("prune", "--older-than", "30d", "--group", stream.group_id, "--execute")
    assert refused.code == 1
    assert refused.out == ""
    line = one_line(refused.err)
    assert line.startswith(f"roi-worker: error: group {stream.group_id} has 1 live member")
    assert "nothing changed" in line
    assert group_rows(stream.database_url) == after

    # What the kept rows are for: without them, the old backfill's rows are unexplained.
    with psycopg.connect(stream.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM offset_ledger WHERE consumer_group = %s", (old,))
        unexplained = reconcile(conn)
    assert not unexplained.ok
    assert {p.kind for p in unexplained.problems} == {"mismatch"}
    assert all("inserted by no batch" in p.message for p in unexplained.problems)


@pytest.mark.parametrize("age", ["30", "0d", "3.5d", "30D", "-1h", "36501d"])
def test_prune_refuses_a_bad_age_with_one_line_and_exit_2(
    offsets: OffsetsCommand, age: str
) -> None:
    """--older-than takes a whole number of days or hours; anything else is a usage error."""
    refused = offsets("prune", "--older-than", age)
    assert refused.code == 2
    assert refused.out == ""
    assert "argument --older-than:" in one_line(refused.err)
