"""`roi-worker replay` and `roi-worker retention` against the real broker and database: a
replay ends at the offsets of its start, changes nothing already stored, never touches the live
group, reads the range asked for, resumes where it stopped; retention then a full replay counts
nothing twice."""

from __future__ import annotations

import itertools
import re
import shlex
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from tests.cli_runner import Outcome, RoiWorker, remove_roi_settings, run_in_process
from tests.fixtures.services import Services, new_database
from tests.helpers import wait_until
from tests.integration.events import Sample, expected_summary, sample_events
from tests.worker_harness import (
    Stream,
    WorkerProcess,
    end_offsets,
    produce,
    query,
    start,
    stored_offsets,
    wait_caught_up,
)
from worker.cli import replay as cli_replay
from worker.db.migrate import load_migrations, migrate
from worker.errors import DatabaseUnavailableError
from worker.ops import replay as ops_replay
from worker.ops.replay import Plan, Replay, plan_replay
from worker.ops.retention import RETENTION_LOCK_KEY, horizon_for
from worker.roi.summaries import find_drift
from worker.settings import RetryPolicy

BATCH = "50"  # ROI_BATCH_MAX_MESSAGES of the replays: several batches per replay
PRODUCE_TIMEOUT = 30.0  # seconds
HEADER = [
    "partition",
    "start",
    "end",
    "read",
    "inserted",
    "duplicates",
    "invalid",
    "conflicts",
    "refused",
    "expired",
    "status",
]
COUNTS = HEADER[3:-1]
BACKFILL_GROUP = re.compile(r"roi-backfill-\d{8}T\d{6}Z-[0-9a-f]{4}")


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Row:
    """One partition's line of a replay report."""

    start: int
    end: int
    counts: dict[str, int]
    status: str


@dataclass(frozen=True)
class Report:
    """A replay report parsed from stdout: per partition, the totals and the summary line."""

    rows: dict[int, Row]
    total: dict[str, int]
    status: str
    summary: str


def number(text: str) -> int:
    return int(text.replace(",", ""))


def parse_report(out: str) -> Report:
    lines = out.splitlines()
    assert lines[0].split() == HEADER, out
    blank = lines.index("")
    *rows, total = [re.split(r"\s{2,}", line.strip()) for line in lines[1:blank]]
    assert total[0] == "total", out
    (summary,) = lines[blank + 1 :]
    return Report(
        rows={
            int(row[0]): Row(
                number(row[1]),
                number(row[2]),
                {name: number(value) for name, value in zip(COUNTS, row[3:-1], strict=True)},
                row[-1],
            )
            for row in rows
        },
        total={name: number(value) for name, value in zip(COUNTS, total[1:-1], strict=True)},
        status=total[-1],
        summary=summary,
    )


def counts(**given: int) -> dict[str, int]:
    """A report's counts: those given, every other one 0."""
    return {name: given.get(name, 0) for name in COUNTS}


@pytest.fixture
def roi_worker(
    stream: Stream, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> RoiWorker:
    """Runs `roi-worker ARGS` in-process with the stream's ROI_* settings (keywords override).

    Depends on `stream` (and so `services`), which read the ROI_* variables this fixture then
    replaces.
    """
    remove_roi_settings(monkeypatch)

    def run(*args: str, **env: str) -> Outcome:
        for name, value in stream.env(**{"ROI_BATCH_MAX_MESSAGES": BATCH, **env}).items():
            monkeypatch.setenv(name, value)
        return run_in_process(capsys, args)

    return run


def replayed(outcome: Outcome) -> Report:
    """The report of a replay that read every range to its end."""
    assert outcome.code == 0, outcome
    report = parse_report(outcome.out)
    assert report.status == "complete"
    assert {row.status for row in report.rows.values()} <= {"done"}
    return report


def refused(outcome: Outcome) -> str:
    """The one line of a command refused as a usage error (exit 2), without a traceback."""
    assert (outcome.code, outcome.out) == (2, ""), outcome
    (line,) = outcome.err.splitlines()
    assert re.match(r"roi-worker( replay)?: error: ", line), line
    return line


def summaries(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Both summary tables' rows, last_updated aside, in key order."""
    with psycopg.connect(url) as conn:
        tables = []
        for query_text in (
            "SELECT * FROM pattern_roi_summary ORDER BY pattern_id",
            "SELECT * FROM pattern_roi_daily ORDER BY pattern_id, day",
        ):
            cur = conn.execute(query_text)
            assert cur.description is not None
            keep = [i for i, c in enumerate(cur.description) if c.name != "last_updated"]
            tables.append([tuple(row[i] for i in keep) for row in cur.fetchall()])
    return tables[0], tables[1]


def drift(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [line for row in find_drift(conn) for line in row.describe()]


def stored_ids(url: str) -> set[uuid.UUID]:
    return {row[0] for row in query(url, "SELECT event_id FROM pattern_executions")}


def ids(samples: Iterable[Sample]) -> set[uuid.UUID]:
    return {uuid.UUID(s.document["event_id"]) for s in samples}


def offset_groups(url: str) -> dict[str, dict[int, int]]:
    """consumer_offsets: group -> partition -> next offset."""
    groups: dict[str, dict[int, int]] = {}
    for group, partition, offset in query(
        url, "SELECT consumer_group, partition, next_offset FROM consumer_offsets"
    ):
        groups.setdefault(group, {})[partition] = offset
    return groups


def produce_to(
    stream: Stream,
    samples: Sequence[Sample],
    partition: Callable[[int], int] = lambda index: 0,
    timestamp_ms: int | None = None,
) -> None:
    """Publishes the samples to chosen partitions, with a chosen timestamp; waits for the acks."""
    producer = KafkaProducer(bootstrap_servers=stream.bootstrap_servers, acks="all", linger_ms=5)
    try:
        futures = [
            producer.send(
                stream.topic,
                key=s.key,
                value=s.value,
                partition=partition(index),
                timestamp_ms=timestamp_ms,
            )
            for index, s in enumerate(samples)
        ]
        producer.flush(timeout=PRODUCE_TIMEOUT)
        for future in futures:
            future.get(timeout=0)
    finally:
        producer.close(timeout=10)


class BackgroundProducer:
    """Publishes events to a topic from a thread, 20 at a time, from `go()` until stopped."""

    def __init__(self, stream: Stream, samples: Sequence[Sample]) -> None:
        self._stream = stream
        self._samples = samples
        self._go = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background-producer")
        self.acked = 0  # written by the thread only
        self.error: BaseException | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def go(self) -> None:
        self._go.set()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._go.set()
        self._thread.join(timeout=PRODUCE_TIMEOUT)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise AssertionError(f"the background producer failed: {self.error!r}")

    def _run(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self._stream.bootstrap_servers, acks="all", linger_ms=5
        )
        try:
            self._go.wait()
            chunks = [self._samples[i : i + 20] for i in range(0, len(self._samples), 20)]
            for chunk in itertools.cycle(chunks):
                if self._stop.is_set():
                    return
                futures = [
                    producer.send(self._stream.topic, key=s.key, value=s.value) for s in chunk
                ]
                producer.flush(timeout=PRODUCE_TIMEOUT)
                for future in futures:
                    future.get(timeout=0)
                self.acked += len(chunk)
        except BaseException as exc:  # reported by __exit__, on the test's thread
            self.error = exc
        finally:
            producer.close(timeout=10)


def frozen_clock(moment: datetime) -> type[datetime]:
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Self:
            return cls.fromtimestamp(moment.timestamp(), tz)

    return FrozenClock


# --------------------------------------------------------------------------- bounded end


def test_replay_reads_only_the_messages_that_existed_when_it_started(
    stream: Stream, roi_worker: RoiWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay from the beginning while another producer keeps publishing ends by itself
    (exit 0), having read and stored exactly the messages that existed when it planned."""
    samples = sample_events(600)
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    ends = end_offsets(stream.bootstrap_servers, stream.topic)
    assert sum(ends.values()) == len(samples)

    with BackgroundProducer(stream, sample_events(400, seed=11)) as background:

        def plan_then_publish_more(*args: Any) -> Plan:
            # The end offsets are fixed now: more messages arrive before anything is read,
            # and keep arriving while the replay reads.
            plan = plan_replay(*args)
            background.go()
            wait_until(
                lambda: background.acked >= 60,
                timeout=PRODUCE_TIMEOUT,
                what="60 messages published after the replay's plan",
            )
            return plan

        monkeypatch.setattr(ops_replay, "plan_replay", plan_then_publish_more)
        outcome = roi_worker("replay", "--from-beginning")
        published_meanwhile = background.acked

    report = replayed(outcome)
    assert report.total == counts(read=600, inserted=600)
    assert {p: (row.start, row.end) for p, row in report.rows.items()} == {
        p: (0, end) for p, end in ends.items()
    }
    assert published_meanwhile >= 60
    assert sum(end_offsets(stream.bootstrap_servers, stream.topic).values()) >= 660
    assert stored_ids(stream.database_url) == ids(samples)
    assert drift(stream.database_url) == []
    assert f"replaying 600 messages of {stream.topic}" in outcome.err
    # Its positions are the planned ends, under a dated group of its own.
    ((group, positions),) = offset_groups(stream.database_url).items()
    assert BACKFILL_GROUP.fullmatch(group)
    assert positions == ends
    assert report.summary == (
        "read 600 messages, inserted 600 events, 0 already stored, 0 invalid, 0 conflicting, "
        f"0 refused, 0 expired; positions stored under group {group}"
    )


# --------------------------------------------------------------------------- idempotent


def test_replay_of_stored_events_changes_nothing_and_a_dry_run_writes_nothing(
    stream: Stream,
    roi_worker: RoiWorker,
    services: Services,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    """After a live worker stored every event, a full replay (twice) finds only duplicates and
    leaves the summaries as they were; a dry run on an empty database counts every event as
    to be inserted and writes nothing at all."""
    samples = sample_events(300)
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    worker = start(stream, workers, tmp_path)
    worker.wait_ready()
    wait_caught_up(stream)
    assert worker.stop() == 0
    before = summaries(stream.database_url)

    for _ in range(2):
        report = replayed(roi_worker("replay", "--from-beginning"))
        assert report.total == counts(read=300, duplicates=300)
        assert summaries(stream.database_url) == before
        assert drift(stream.database_url) == []
        assert stored_ids(stream.database_url) == ids(samples)

    with new_database(services, "replay_dry") as empty:
        migrate(empty, load_migrations())
        outcome = roi_worker("replay", "--from-beginning", "--dry-run", ROI_DATABASE_URL=empty)
        report = replayed(outcome)
        assert report.total == counts(read=300, inserted=300)
        assert report.summary == (
            "dry run: read 300 messages, would insert 300 events, 0 already stored, 0 invalid, "
            "0 conflicting, 0 refused, 0 expired"
        )
        assert "(dry run: nothing is written)" in outcome.err
        for table in (
            "pattern_executions",
            "consumer_offsets",
            "pattern_roi_summary",
            "pattern_roi_daily",
        ):
            assert query(empty, f"SELECT count(*) FROM {table}") == [(0,)], table


def test_a_dry_run_counts_an_event_repeated_across_batches_once(
    stream: Stream, roi_worker: RoiWorker
) -> None:
    """A dry run remembers what earlier batches would have inserted: the same events published
    twice count once as inserted and once as already stored, as the real replay does."""
    samples = sample_events(30)
    produce_to(stream, [*samples, *samples])
    dry = replayed(roi_worker("replay", "--from-beginning", "--dry-run"))
    assert dry.total == counts(read=60, inserted=30, duplicates=30)
    real = replayed(roi_worker("replay", "--from-beginning"))
    assert real.total == dry.total


def test_from_time_after_to_time_is_refused(stream: Stream, roi_worker: RoiWorker) -> None:
    """An empty time range is a mistake, said in one line with exit 2, not an empty replay."""
    line = refused(
        roi_worker(
            "replay",
            "--from-time",
            "2026-01-02T00:00:00Z",
            "--to-time",
            "2026-01-01T00:00:00Z",
        )
    )
    assert line == "roi-worker: error: configuration error: --from-time must be before --to-time"


# --------------------------------------------------------------------------- live group


def committed(admin: KafkaAdminClient, group: str) -> dict[int, int]:
    """The group's committed offsets in Kafka: partition -> offset."""
    found = admin.list_group_offsets({group: None}).get(group, {})
    return {tp.partition: meta.offset for tp, meta in found.items() if meta.offset >= 0}


def membership(admin: KafkaAdminClient, group: str) -> tuple[str, list[tuple[str, str]]]:
    """The group's state and its members: (member id, assignment), sorted."""
    described = admin.describe_groups([group])[group]
    members = [(m["member_id"], repr(m["member_assignment"])) for m in described["members"]]
    return str(described["group_state"]), sorted(members)


def test_replay_leaves_the_live_group_alone(
    stream: Stream,
    roi_worker: RoiWorker,
    kafka_admin: KafkaAdminClient,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    """A replay beside a running worker (and after it stopped) changes neither the live
    group's stored offsets, nor its Kafka commits, nor its members, who keep consuming; the
    replay stores its positions under its own group, and the live group's name is refused."""
    samples = sample_events(400)
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples[:300]])
    worker = start(stream, workers, tmp_path)
    worker.wait_ready()
    wait_caught_up(stream)
    url, live = stream.database_url, stream.group_id
    wait_until(
        lambda: committed(kafka_admin, live) == stored_offsets(url, live, stream.topic),
        timeout=PRODUCE_TIMEOUT,
        what="the live group's Kafka commits to follow the database",
    )
    live_rows = "SELECT * FROM consumer_offsets WHERE consumer_group = %s ORDER BY partition"
    rows_before = query(url, live_rows, (live,))
    committed_before = committed(kafka_admin, live)
    members_before = membership(kafka_admin, live)
    assert members_before[0] == "Stable"
    assert len(members_before[1]) == 1

    report = replayed(roi_worker("replay", "--from-beginning"))
    assert report.total == counts(read=300, duplicates=300)
    assert query(url, live_rows, (live,)) == rows_before  # updated_at included
    assert committed(kafka_admin, live) == committed_before
    assert membership(kafka_admin, live) == members_before
    ((group, positions),) = {g: p for g, p in offset_groups(url).items() if g != live}.items()
    assert BACKFILL_GROUP.fullmatch(group)
    assert positions == end_offsets(stream.bootstrap_servers, stream.topic)
    assert group not in {g["group_id"] for g in kafka_admin.list_groups()}

    # The worker kept its partitions: it stores what is published after the replay.
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples[300:]])
    wait_caught_up(stream)
    assert stored_ids(url) == ids(samples)
    assert membership(kafka_admin, live) == members_before
    assert worker.stop() == 0

    wait_until(
        lambda: committed(kafka_admin, live) == stored_offsets(url, live, stream.topic),
        timeout=PRODUCE_TIMEOUT,
        what="the live group's last Kafka commits",
    )
    wait_until(
        lambda: membership(kafka_admin, live) == ("Empty", []),
        timeout=PRODUCE_TIMEOUT,
        what="the live group to be empty",
    )
    rows_before = query(url, live_rows, (live,))
    committed_before = committed(kafka_admin, live)
    report = replayed(roi_worker("replay", "--from-beginning", "--group", "after-the-worker"))
    assert report.total == counts(read=400, duplicates=400)
    assert query(url, live_rows, (live,)) == rows_before
    assert committed(kafka_admin, live) == committed_before
    assert membership(kafka_admin, live) == ("Empty", [])
    assert offset_groups(url)["after-the-worker"] == end_offsets(
        stream.bootstrap_servers, stream.topic
    )

    line = refused(roi_worker("replay", "--from-beginning", "--group", live))
    assert line == (
        f"roi-worker: error: configuration error: --group {live} is the live group "
        "(ROI_GROUP_ID); a replay never moves its positions: choose another name"
    )
    assert query(url, live_rows, (live,)) == rows_before


# --------------------------------------------------------------------------- ranges


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("stream", [1], indirect=True)
def test_replay_reads_the_range_asked_for_and_refuses_bad_ranges(
    stream: Stream, roi_worker: RoiWorker
) -> None:
    """--from-time replays from the first message at or after it, --to-time stops before the
    first at or after it, --from-offsets 0:K from offset K; a naive time, an offset beyond the
    end, a missing partition or a malformed offset exit 2 with one line."""
    first, second = sample_events(50)[:20], sample_events(50)[20:]
    earlier = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    later = earlier + timedelta(hours=1)
    produce_to(stream, first, timestamp_ms=int(earlier.timestamp() * 1000))
    produce_to(stream, second, timestamp_ms=int(later.timestamp() * 1000))
    between = earlier + timedelta(minutes=30)
    url = stream.database_url

    # At the boundaries, read only (a dry run).
    report = replayed(roi_worker("replay", "--from-time", iso(later), "--dry-run"))
    assert (report.rows[0].start, report.rows[0].end) == (20, 50)
    report = replayed(
        roi_worker("replay", "--from-beginning", "--to-time", iso(later), "--dry-run")
    )
    assert (report.rows[0].start, report.rows[0].end) == (0, 20)
    assert stored_ids(url) == set()

    report = replayed(roi_worker("replay", "--from-time", iso(between)))
    assert (report.rows[0].start, report.rows[0].end) == (20, 50)
    assert report.total == counts(read=30, inserted=30)
    assert stored_ids(url) == ids(second)

    report = replayed(roi_worker("replay", "--from-beginning", "--to-time", iso(between)))
    assert (report.rows[0].start, report.rows[0].end) == (0, 20)
    assert report.total == counts(read=20, inserted=20)
    assert stored_ids(url) == ids(first + second)

    report = replayed(roi_worker("replay", "--from-offsets", "0:15", "--group", "from-15"))
    assert (report.rows[0].start, report.rows[0].end) == (15, 50)
    assert report.total == counts(read=35, duplicates=35)
    assert offset_groups(url)["from-15"] == {0: 50}
    assert drift(url) == []

    groups_before = offset_groups(url)
    naive = refused(roi_worker("replay", "--from-time", "2026-11-20T00:00:00"))
    assert "argument --from-time: '2026-11-20T00:00:00' has no timezone offset" in naive
    beyond = refused(roi_worker("replay", "--from-offsets", "0:51"))
    assert beyond == (
        "roi-worker: error: configuration error: --from-offsets beyond the end: 0:51 (end 50)"
    )
    missing = refused(roi_worker("replay", "--from-offsets", "0:0,1:0"))
    assert missing == (
        f"roi-worker: error: configuration error: --from-offsets: {stream.topic} has no "
        "partition 1 (it has 1)"
    )
    malformed = refused(roi_worker("replay", "--from-offsets", "0-5"))
    assert "argument --from-offsets: '0-5' is not PARTITION:OFFSET" in malformed
    future = iso(datetime.now(UTC) + timedelta(hours=1))
    ahead = refused(roi_worker("replay", "--from-beginning", "--to-time", future))
    assert "--to-time is in the future" in ahead
    assert offset_groups(url) == groups_before


# --------------------------------------------------------------------------- interrupted


class InterruptedAfterFirstBatch(Replay):
    """A replay interrupted once its first batch is stored: by its stop event (`ctrl_c`
    False, as a signal handler would) or by KeyboardInterrupt (Ctrl-C)."""

    ctrl_c = False

    def __init__(self, *args: Any, progress: Callable[[int], None], **kwargs: Any) -> None:
        self.stop: threading.Event | None = None

        def progress_then_stop(read: int) -> None:
            progress(read)
            if self.ctrl_c:
                raise KeyboardInterrupt
            assert self.stop is not None
            self.stop.set()

        super().__init__(*args, progress=progress_then_stop, **kwargs)

    def run(self, consumer: Any, stop: threading.Event | None = None) -> Plan:
        self.stop = stop
        return super().run(consumer, stop)


class CtrlCAfterFirstBatch(InterruptedAfterFirstBatch):
    ctrl_c = True


@pytest.mark.parametrize(
    ("interrupted", "code"),
    [(InterruptedAfterFirstBatch, 1), (CtrlCAfterFirstBatch, 130)],
    ids=["stopped", "ctrl-c"],
)
def test_an_interrupted_replay_says_so_and_its_resume_hint_completes_it(
    stream: Stream,
    roi_worker: RoiWorker,
    monkeypatch: pytest.MonkeyPatch,
    interrupted: type[Replay],
    code: int,
) -> None:
    """A replay stopped (exit 1) or interrupted by Ctrl-C (exit 130) after its first batch
    reports INCOMPLETE and prints on stderr the command that continues from the partitions'
    positions; that command completes the replay, and every event is then stored once."""
    samples = sample_events(300)
    produce_to(stream, samples, partition=lambda index: index % 3)  # 100 per partition
    monkeypatch.setattr(ops_replay, "Replay", interrupted)
    outcome = roi_worker(
        "replay", "--from-beginning", "--group", "stopped", ROI_BATCH_MAX_MESSAGES="10"
    )

    assert outcome.code == code, outcome
    report = parse_report(outcome.out)
    assert report.status == "INCOMPLETE"
    read = {p: row.counts["read"] for p, row in report.rows.items()}
    # The first batch, and the next one if it was already being written when the replay stopped.
    assert 0 < sum(read.values()) <= 20
    assert report.total == counts(read=sum(read.values()), inserted=sum(read.values()))
    assert {p: (row.start, row.end, row.status) for p, row in report.rows.items()} == {
        p: (0, 100, f"stopped at {read[p]}") for p in range(3)
    }
    # What was read is stored, with its positions.
    assert offset_groups(stream.database_url)["stopped"] == {p: n for p, n in read.items() if n}
    hint = outcome.err.splitlines()[-1]
    prefix = "not every partition was read to its end; to continue: "
    assert hint.startswith(prefix)
    command = shlex.split(hint.removeprefix(prefix))
    assert command == [
        "roi-worker",
        "replay",
        "--topic",
        stream.topic,
        "--group",
        "stopped",
        "--from-offsets",
        ",".join(f"{p}:{read[p]}" for p in range(3)),
    ]

    monkeypatch.setattr(ops_replay, "Replay", Replay)
    report = replayed(roi_worker(*command[1:]))
    assert report.total == counts(read=300 - sum(read.values()), inserted=300 - sum(read.values()))
    assert offset_groups(stream.database_url)["stopped"] == {0: 100, 1: 100, 2: 100}
    assert stored_ids(stream.database_url) == ids(samples)
    summary = query(
        stream.database_url,
        "SELECT pattern_id, total_executions, successful_executions, total_time_saved_seconds,"
        " total_cost_saved_usd FROM pattern_roi_summary",
    )
    assert {row[0]: tuple(row[1:]) for row in summary} == expected_summary(samples)
    assert drift(stream.database_url) == []
    # Both runs tile in the offset ledger of the group: the second began where the first ended.
    assert roi_worker("reconcile", "--group", "stopped").code == 0


def test_a_replay_over_offsets_its_group_already_read_moves_it_back_in_the_ledger(
    stream: Stream, roi_worker: RoiWorker
) -> None:
    """Replaying again, under the same group, from offsets before where it stands starts the
    group there (a replay row in the offset ledger); reconcile accounts for both runs."""
    produce_to(stream, sample_events(60))
    replayed(roi_worker("replay", "--from-beginning", "--group", "twice"))
    report = replayed(roi_worker("replay", "--from-offsets", "0:25", "--group", "twice"))
    assert report.total == counts(read=35, duplicates=35)
    assert offset_groups(stream.database_url)["twice"] == {0: 60}
    moves = query(
        stream.database_url,
        "SELECT kind, partition, first_offset, next_offset FROM offset_ledger "
        "WHERE consumer_group = 'twice' AND kind <> 'batch' ORDER BY id",
    )
    assert moves == [("start", 0, 0, 0), ("replay", 0, 60, 25)]
    outcome = roi_worker("reconcile", "--group", "twice", "--topic", stream.topic)
    assert outcome.code == 0, outcome
    assert f"replay: group twice, {stream.topic}/0: moved from 60 to 25 at " in outcome.out


class FailingToStore(Replay):
    """A replay whose database is gone for good: every attempt to store a batch fails (two,
    a moment apart, instead of BACKFILL's half a minute)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs, retry=RetryPolicy(first=0.01, maximum=0.01, attempts=2))

    def _write(self, *args: Any) -> Any:
        raise DatabaseUnavailableError("PostgreSQL: the test took it away")


def test_a_partition_whose_last_batch_failed_is_not_done(
    stream: Stream, roi_worker: RoiWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition read to its end in one batch that then fails to store is reported as not
    done, and the resume hint (keeping --to-time and --dry-run) starts it where it began."""
    produce_to(stream, sample_events(5))
    monkeypatch.setattr(ops_replay, "Replay", FailingToStore)
    to_time = datetime.now(UTC) + timedelta(milliseconds=1)
    monkeypatch.setattr(cli_replay, "datetime", frozen_clock(to_time + timedelta(seconds=1)))
    outcome = roi_worker(
        "replay", "--from-beginning", "--dry-run", "--group", "gone", "--to-time", iso(to_time)
    )
    assert outcome.code == 1
    report = parse_report(outcome.out)
    assert report.status == "INCOMPLETE"
    assert report.rows[0].status == "stopped at 0"
    hint, error = outcome.err.splitlines()[-2:]
    assert hint.endswith(
        f"--topic {stream.topic} --group gone --from-offsets 0:0 --to-time {iso(to_time)} --dry-run"
    )
    assert error == "roi-worker: error: PostgreSQL: the test took it away"


# --------------------------------------------------------------------------- retention


def aged_events(now: datetime, days: int = 20, per_day: int = 6) -> list[Sample]:
    """`per_day` events a day over the last `days` days (ending an hour before `now`), over
    three patterns, with deterministic event ids and figures."""
    samples = []
    for index in range(days * per_day):
        age, slot = divmod(index, per_day)
        samples.append(
            Sample(
                {
                    "schema_version": 1,
                    "event_id": str(uuid.UUID(int=0xA9ED_0000 + index, version=4)),
                    "pattern_id": f"aged-{slot % 3}",
                    "executed_at": (now - timedelta(days=age, hours=1, minutes=slot)).isoformat(),
                    "success": index % 5 != 0,
                    "execution_time_seconds": Decimal(10 + index % 17),
                    "estimated_time_seconds": 120,
                    "actual_cost": str(Decimal(25 + index % 11) / 100),
                    "estimated_cost": "2.50",
                }
            )
        )
    return samples


def executed_at(sample: Sample) -> datetime:
    return datetime.fromisoformat(sample.document["executed_at"])


def test_workers_apply_retention_by_themselves_one_at_a_time(
    stream: Stream, roi_worker: RoiWorker, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """ROI_RETENTION_DAYS: a worker applies retention by itself, but not while another session
    holds the retention lock; afterwards the old raw executions are gone and verify holds."""
    now = datetime.now(UTC)
    samples = aged_events(now)
    recent = [s for s in samples if executed_at(s) >= horizon_for(10, now.date())]
    assert len(recent) < len(samples)
    url = stream.database_url
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    with psycopg.connect(url, autocommit=True) as other_replica:
        other_replica.execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK_KEY,))
        worker = start(
            stream,
            workers,
            tmp_path,
            ROI_RETENTION_DAYS="10",
            ROI_RETENTION_CHECK_SECONDS="1",
        )
        wait_caught_up(stream)
        wait_until(
            lambda: worker.log().count("retention: another replica is applying it") >= 2,
            timeout=60,
            what="the worker to find the retention lock taken",
        )
        assert stored_ids(url) == ids(samples)  # nothing deleted while the lock is held
        assert query(url, "SELECT count(*) FROM retention_horizon") == [(0,)]
    wait_until(lambda: stored_ids(url) == ids(recent), timeout=60, what="the scheduled retention")
    wait_until(lambda: "retention: deleted" in worker.log(), timeout=30, what="its log line")
    verified = roi_worker("verify")
    assert verified.code == 0, verified


def test_retention_then_a_full_replay_counts_nothing_twice(
    stream: Stream,
    roi_worker: RoiWorker,
    workers: list[WorkerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """retention --older-than 10d deletes the older raw executions and leaves both summaries
    and verify as they were; a full replay then counts those as expired and inserts nothing,
    a live worker counts a re-published old event as expired, rebuild-summaries keeps the
    deleted history, a dry run deletes nothing, and the horizon never moves back."""
    now = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(cli_replay, "datetime", frozen_clock(now))  # `today` cannot move
    samples = aged_events(now)
    horizon = horizon_for(10, now.date())
    old = [s for s in samples if executed_at(s) < horizon]
    recent = [s for s in samples if executed_at(s) >= horizon]
    assert 54 <= len(old) <= 60  # ages 11 to 19 days, and age 10 if now is before 01:05
    when = f"{horizon:%Y-%m-%d %H:%M} UTC"
    url = stream.database_url

    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    worker = start(stream, workers, tmp_path)
    worker.wait_ready()
    wait_caught_up(stream)
    before = summaries(url)
    assert stored_ids(url) == ids(samples)

    dry = roi_worker("retention", "--older-than", "10d", "--dry-run")
    assert dry == Outcome(
        0,
        f"plan: would delete {len(old)} raw executions from before {when}; nothing changed: "
        "add --execute to apply\n",
        "",
    )
    assert roi_worker("retention", "--older-than", "10d") == dry  # the plan is the default
    assert stored_ids(url) == ids(samples)
    assert query(url, "SELECT count(*) FROM retention_horizon") == [(0,)]

    deleted = roi_worker("retention", "--older-than", "10d", "--execute")
    assert (deleted.code, deleted.out) == (
        0,
        f"deleted {len(old)} raw executions from before {when}; the summaries still count "
        "them, and later events from before then will be expired\n",
    )
    assert stored_ids(url) == ids(recent)
    assert query(url, "SELECT horizon FROM retention_horizon") == [(horizon,)]
    assert query(url, "SELECT sum(total_executions) FROM pattern_roi_archive") == [(len(old),)]
    assert summaries(url) == before
    verify = roi_worker("verify")
    assert verify == Outcome(0, "summaries match a full recompute of the stored executions\n", "")

    report = replayed(roi_worker("replay", "--from-beginning"))
    assert report.total == counts(read=len(samples), duplicates=len(recent), expired=len(old))
    assert stored_ids(url) == ids(recent)
    assert summaries(url) == before
    assert drift(url) == []

    # The live worker receives two old events again: expired, neither stored nor counted.
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in old[:2]])
    wait_until(
        lambda: worker.sample('roi_worker_messages_total{outcome="expired"}') == 2,
        timeout=PRODUCE_TIMEOUT,
        what="the worker to count two expired events",
    )
    wait_caught_up(stream)
    assert worker.metrics()['roi_worker_messages_total{outcome="inserted"}'] == len(samples)
    assert stored_ids(url) == ids(recent)
    assert summaries(url) == before
    assert worker.stop() == 0

    rebuilt = roi_worker("rebuild-summaries")
    assert (rebuilt.code, rebuilt.err) == (0, "")
    assert rebuilt.out.endswith(": 0 rows corrected\n"), rebuilt.out
    assert summaries(url) == before

    # An earlier horizon does not move the recorded one back, nor delete anything.
    kept = roi_worker("retention", "--older-than", "15d", "--execute")
    assert kept == Outcome(
        0,
        f"the recorded horizon {when} is later and stays\n"
        f"deleted 0 raw executions from before {when}; the summaries still count them, and "
        "later events from before then will be expired\n",
        "",
    )
    assert query(url, "SELECT horizon FROM retention_horizon") == [(horizon,)]
    assert stored_ids(url) == ids(recent)

    # A later one moves it forward; the summaries still count everything.
    later = horizon_for(5, now.date())
    moved = roi_worker("retention", "--older-than", "5d", "--execute")
    assert moved.code == 0
    assert query(url, "SELECT horizon FROM retention_horizon") == [(later,)]
    assert stored_ids(url) == ids(s for s in samples if executed_at(s) >= later)
    assert summaries(url) == before
    assert drift(url) == []
