"""Fault injection around real worker processes: what tests/integration/test_faults.py needs.

- `SIZE`: the reduced scenarios of `make test`, or the full ones of `make soak` (SOAK=1).
- `ProgressMonitor`: samples the stored offsets while a scenario runs and measures stalls
  (time since a partition's stored offset last moved while it had lag) and how soon storing
  resumes after a fault ends.
- `PrivateServices`: a private Kafka broker and PostgreSQL server (deploy/local/services.sh on
  free ports, own state directory) that a test may SIGKILL, stop and restart.
- Freezing a worker (SIGSTOP/SIGCONT) and finding its PostgreSQL sessions.
- `assert_all_accounted_for`: the end of every scenario: lost = 0, doubled = 0, every invalid
  event dead-lettered, `roi-worker verify` and `roi-worker reconcile` exit 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from tests.helpers import wait_until
from tests.integration.events import Sample, expected_summary
from tests.worker_harness import (
    Stream,
    WorkerProcess,
    end_offsets,
    free_ports,
    query,
    stored_offsets,
)

REPO = Path(__file__).parents[1]
SERVICES_SCRIPT = REPO / "deploy" / "local" / "services.sh"

# The worker settings every scenario uses: stalls are declared (and handed back) after
# STALL_SECONDS; a frozen or killed member leaves the group after 6 s.
STALL_SECONDS = 12
STALL_MARGIN_SECONDS = 5.0  # what the monitor may see beyond STALL_SECONDS once faults are over
RESUME_SECONDS = 10.0  # storing resumes this soon after the broker or database comes back
FAULT_ENV = {
    "ROI_STALL_SECONDS": str(STALL_SECONDS),
    "ROI_KAFKA_SESSION_TIMEOUT_MS": "6000",
    # Small batches: many transactions and dead-letter rounds, so a fault lands mid-stream.
    "ROI_BATCH_MAX_MESSAGES": "10",
    # ... and small fetches to match: kafka-python hands out one partition's fetched records
    # before the next partition's, and 4 MiB of them at the pace of 10-event batches would
    # keep a worker's other partitions waiting for longer than the stall limit.
    "ROI_KAFKA_MAX_PARTITION_FETCH_BYTES": "65536",
    # Streams with many invalid events on purpose: never trip the circuit breaker.
    "ROI_DLQ_MAX_RATIO": "0",
}


@dataclass(frozen=True)
class Size:
    """How big each scenario is."""

    events: int  # valid events per stream (scenario 1 adds as many invalid ones)
    rounds: int  # faults per stream, or repetitions of a scenario
    churn_steps: int  # membership changes in the churn scenario
    start_delays: tuple[float, ...]  # seconds after spawning at which SIGTERM is sent


SIZE = (
    Size(50_000, 4, 24, tuple(round(0.1 + 0.3 * i, 1) for i in range(21)))
    if os.environ.get("SOAK") == "1"
    else Size(3_000, 1, 6, (0.2, 0.5, 1.0, 2.0, 4.0))
)


# ---------------------------------------------------------------------------- progress


@dataclass
class _Partition:
    stored: int = -1
    since: float = 0.0  # monotonic time of the last progress (or of no lag)


@dataclass
class Stall:
    partition: int
    seconds: float
    at: float  # monotonic time the longest stall was measured


class ProgressMonitor:
    """Samples the group's stored offsets every `interval` s on a thread of its own.

    A partition is stalled while its stored offset stays below the topic's end (as told by
    `expect`) without moving. Within a fault window (`fault_begins` to `fault_ends`) stalls are
    not measured; when one ends, every clock restarts, so afterwards a stall measures only the
    time the worker took on its own. `history` keeps every sample for resume_delays.
    """

    def __init__(self, stream: Stream, interval: float = 0.2) -> None:
        self._stream = stream
        self._interval = interval
        self._lock = threading.Lock()
        self._ends: dict[int, int] = {}
        self._partitions: dict[int, _Partition] = {}
        self._in_fault = False
        self._reset_at = time.monotonic()
        self.history: list[tuple[float, dict[int, int]]] = []
        self.worst: Stall | None = None
        self.failed_samples = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-monitor", daemon=True)
        self._conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> ProgressMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)
        if self._conn is not None:
            self._conn.close()

    def expect(self) -> dict[int, int]:
        """Reads the topic's end offsets (call after producing): where storing must get to."""
        ends = end_offsets(self._stream.bootstrap_servers, self._stream.topic)
        with self._lock:
            self._ends = dict(ends)
        return ends

    def fault_begins(self) -> None:
        with self._lock:
            self._in_fault = True

    def fault_ends(self) -> float:
        """The fault is over: clocks restart now. Returns the time (monotonic)."""
        now = time.monotonic()
        with self._lock:
            self._in_fault = False
            self._reset_at = now
        return now

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            stored = self._read()
            if stored is None:
                continue
            self._sample(time.monotonic(), stored)

    def _read(self) -> dict[int, int] | None:
        try:
            if self._conn is None:
                self._conn = psycopg.connect(
                    self._stream.database_url, autocommit=True, connect_timeout=2
                )
            rows = self._conn.execute(
                "SELECT partition, next_offset FROM consumer_offsets "
                "WHERE consumer_group = %s AND topic = %s",
                (self._stream.group_id, self._stream.topic),
            ).fetchall()
        except psycopg.Error:  # the server is down or restarting: try again next time
            self.failed_samples += 1
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
            self._conn = None
            return None
        return {int(p): int(o) for p, o in rows}

    def _sample(self, now: float, stored: dict[int, int]) -> None:
        with self._lock:
            self.history.append((now, stored))
            for partition, end in self._ends.items():
                state = self._partitions.setdefault(partition, _Partition(since=now))
                offset = stored.get(partition, 0)
                if offset >= end or offset > state.stored:
                    state.since = now
                state.stored = offset
                if self._in_fault:
                    continue
                stall = now - max(state.since, self._reset_at)
                if self.worst is None or stall > self.worst.seconds:
                    self.worst = Stall(partition, stall, now)

    def lagging(self, stored: dict[int, int]) -> dict[int, int]:
        """The partitions whose `stored` offset is below the expected end, with their lag."""
        with self._lock:
            ends = dict(self._ends)
        return {p: end - stored.get(p, 0) for p, end in ends.items() if stored.get(p, 0) < end}

    def wait_for_a_sample(self, timeout: float = 10.0) -> None:
        """Waits until the history holds a sample taken after this call."""
        asked = time.monotonic()

        def sampled() -> bool:
            with self._lock:
                return bool(self.history) and self.history[-1][0] > asked

        wait_until(sampled, timeout=timeout, interval=0.05, what="a fresh progress sample")

    def resume_delays(self, since: float, baseline: dict[int, int]) -> dict[int, float]:
        """Per partition that had lag at `baseline`: seconds from `since` to the first sample
        that shows its stored offset past `baseline` (infinity if none did)."""
        delays: dict[int, float] = {}
        with self._lock:
            history = list(self.history)
        for partition in self.lagging(baseline):
            moved = [
                t
                for t, stored in history
                if t >= since and stored.get(partition, 0) > baseline.get(partition, 0)
            ]
            delays[partition] = (moved[0] - since) if moved else float("inf")
        return delays

    def assert_resumed(self, since: float, baseline: dict[int, int], what: str) -> float:
        """Every partition with lag at `since` stored more within RESUME_SECONDS. Call once
        caught up. Returns the slowest partition's delay."""
        self.wait_for_a_sample()  # the history must hold what is stored now, not 0.2 s ago
        delays = self.resume_delays(since, baseline)
        assert delays, f"no partition had lag when {what}: the fault missed the stream"
        slowest = max(delays.values())
        print(f"storing resumed {slowest:.1f} s after {what}")
        assert slowest <= RESUME_SECONDS, (
            f"storing resumed {slowest:.1f} s after {what} (more than {RESUME_SECONDS:g} s); "
            f"per partition: { {p: round(d, 1) for p, d in delays.items()} }"
        )
        return slowest

    def assert_no_long_stall(self, what: str) -> None:
        """No partition went without storing, with lag, for longer than the stall limit plus
        the margin, outside fault windows."""
        worst = self.worst
        assert worst is not None, "the monitor took no sample"
        assert worst.seconds <= STALL_SECONDS + STALL_MARGIN_SECONDS, (
            f"{what}: partition {worst.partition} stored nothing with lag for "
            f"{worst.seconds:.1f} s (limit {STALL_SECONDS} s + {STALL_MARGIN_SECONDS:g} s)"
        )
        print(f"{what}: {self.summary()}")

    def summary(self) -> str:
        """One line for the test's output (pytest -s): the longest stall measured."""
        worst = self.worst
        stall = "none" if worst is None else f"{worst.seconds:.1f} s (partition {worst.partition})"
        return (
            f"longest stall outside faults: {stall}; {len(self.history)} samples, "
            f"{self.failed_samples} failed"
        )

    def total(self) -> int:
        with self._lock:
            return sum(self.history[-1][1].values()) if self.history else 0

    def wait_total(self, at_least: int, timeout: float = 60.0) -> int:
        """Waits until the stored offsets add up to `at_least`; returns the total."""
        wait_until(
            lambda: self.total() >= at_least,
            timeout=timeout,
            what=f"the group to store {at_least} offsets",
        )
        return self.total()


# ---------------------------------------------------------------------------- private services


@dataclass
class PrivateServices:
    """A Kafka broker and a PostgreSQL server of the test's own, started by
    deploy/local/services.sh on free ports with their own state directory: a test may kill,
    stop and restart them. The shared services of .local/services.env are never touched."""

    state: Path
    env: dict[str, str]
    kafka_port: int
    pg_port: int
    bootstrap_servers: str = ""
    database_url: str = ""

    @classmethod
    @contextlib.contextmanager
    def running(cls, env_dir: Path) -> Iterator[PrivateServices]:
        # Outside /tmp/pytest-of-*, which is private to this user: the postgres user must
        # reach the server's data directory.
        state = Path("/var/tmp") / f"roi-worker-faults-{uuid.uuid4().hex[:8]}"  # noqa: S108
        kafka_port, controller_port, pg_port = free_ports(3)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
        env.update(
            ROI_SERVICES_DIR=str(state),
            ROI_SERVICES_ENV_FILE=str(env_dir / "services.env"),
            ROI_KAFKA_PORT=str(kafka_port),
            ROI_KAFKA_CONTROLLER_PORT=str(controller_port),
            ROI_PG_PORT=str(pg_port),
        )
        services = cls(state, env, kafka_port, pg_port)
        try:
            services.start()
            services.bootstrap_servers = f"127.0.0.1:{kafka_port}"
            services.database_url = f"postgresql://roi:roi@127.0.0.1:{pg_port}/roi"
            yield services
        finally:
            services._script("stop")
            shutil.rmtree(state, ignore_errors=True)

    def _script(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SERVICES_SCRIPT), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def start(self) -> float:
        """Starts whichever of the two is not running (both ready when it returns); returns
        the seconds it took."""
        began = time.monotonic()
        result = self._script("start")
        assert result.returncode == 0, result.stdout + result.stderr
        return time.monotonic() - began

    @property
    def _kafka_home(self) -> Path:
        return self.state / f"kafka-{self.kafka_port}"

    def kill_broker(self) -> None:
        """SIGKILL to the broker; returns once it is gone."""
        pid = int((self._kafka_home / "kafka.pid").read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert str(self._kafka_home / "server.properties") in command, f"{pid} is not ours"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), timeout=30, what=f"the broker (pid {pid}) to die")

    def stop_postgres_immediately(self) -> None:
        """`pg_ctl stop -m immediate`: the server's processes quit without a checkpoint, as
        in a crash; the next start replays the WAL."""
        data = self.state / f"postgres-{self.pg_port}" / "data"
        version = (data / "PG_VERSION").read_text().strip()
        pg_ctl = Path(f"/usr/lib/postgresql/{version}/bin/pg_ctl")
        if not pg_ctl.exists():
            found = shutil.which("pg_ctl")
            assert found, "pg_ctl not found"
            pg_ctl = Path(found)
        argv = [str(pg_ctl), "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "60"]
        if os.geteuid() == 0:  # the server runs as postgres (services.sh does the same)
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(
            argv, cwd="/", capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def _alive(pid: int) -> bool:
    """False once `pid` has exited (a zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# ---------------------------------------------------------------------------- freezing


def process_state(pid: int) -> str:
    """The kernel's one-letter state of `pid` (R, S, T for stopped, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def freeze(worker: WorkerProcess) -> None:
    """SIGSTOP: every thread of the worker stops at once, as in a paused container."""
    worker.check_running()
    os.kill(worker.process.pid, signal.SIGSTOP)
    wait_until(
        lambda: process_state(worker.process.pid) in "Tt",
        timeout=10,
        what="the worker to be stopped",
    )


def thaw(worker: WorkerProcess) -> None:
    """SIGCONT, if it still runs."""
    if worker.process.poll() is None:
        os.kill(worker.process.pid, signal.SIGCONT)


@contextlib.contextmanager
def thawed_at_exit(workers: Sequence[WorkerProcess]) -> Iterator[None]:
    """Whatever happens, no worker is left stopped (SIGTERM cannot end a stopped process)."""
    try:
        yield
    finally:
        for worker in workers:
            thaw(worker)


def local_ports(pid: int, remote_port: int) -> set[int]:
    """The local ports of `pid`'s TCP connections to `remote_port`: its sockets (from
    /proc/PID/fd) looked up in the connection tables."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
            if match:
                inodes.add(match[1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


@dataclass(frozen=True)
class Session:
    pid: int  # the server process of the session
    state: str
    in_transaction: bool
    blocked_by: tuple[int, ...]
    query: str


def sessions(database_url: str, worker: WorkerProcess, pg_port: int) -> list[Session]:
    """The worker's PostgreSQL sessions, found by the client ports of its connections."""
    ports = local_ports(worker.process.pid, pg_port)
    if not ports:
        return []
    rows = query(
        database_url,
        "SELECT pid, coalesce(state, ''), xact_start IS NOT NULL, pg_blocking_pids(pid),"
        " left(query, 80) FROM pg_stat_activity"
        " WHERE client_port = ANY(%s) AND client_addr = '127.0.0.1'",
        (sorted(ports),),
    )
    return [Session(r[0], r[1], r[2], tuple(r[3]), r[4]) for r in rows]


@contextlib.contextmanager
def holding_offsets(stream: Stream) -> Iterator[tuple[psycopg.Connection[Any], int]]:
    """Holds every stored-offset row of the stream's group (the connection, its backend pid):
    each write transaction inserts its events, then waits on this lock to move its offsets,
    inside its transaction and holding the row locks of what it inserted. `rollback()` on the
    connection lets it go."""
    with psycopg.connect(stream.database_url) as lock:
        lock.execute(
            "SELECT partition FROM consumer_offsets"
            " WHERE consumer_group = %s AND topic = %s FOR UPDATE",
            (stream.group_id, stream.topic),
        )
        yield lock, lock.info.backend_pid


def owned_partitions(worker: WorkerProcess, topic: str) -> set[int]:
    """The partitions the worker owns and has positioned, as its /metrics says."""
    pattern = re.compile(
        r'roi_worker_partition_last_stored_timestamp_seconds\{partition="(\d+)",topic="'
        + re.escape(topic)
        + '"}'
    )
    return {int(m[1]) for name in worker.metrics() if (m := pattern.fullmatch(name))}


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the default partitioner sends `key` to (murmur2, as the Java client)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def session_alive(database_url: str, pid: int) -> bool:
    return bool(query(database_url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)))


# ---------------------------------------------------------------------------- the end


def invalid_messages(samples: list[Sample]) -> list[tuple[bytes, bytes]]:
    """One invalid message per sample, same key (so same partition), unique value: half of
    them not JSON, half valid JSON the contract refuses (success is not a boolean)."""
    messages = []
    for index, sample in enumerate(samples):
        if index % 2:
            value = b"not json %d" % index
        else:
            value = sample.value.replace(b'"success":', b'"success":"maybe","was":', 1)
        messages.append((sample.key, value))
    return messages


def interleave(*streams: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [message for group in zip(*streams, strict=True) for message in group]


def read_to_end(bootstrap_servers: str, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every record of `topic` from its start to its end as of now."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    records: list[Any] = []
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)

        def done() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            return all(consumer.position(tp) >= ends[tp] for tp in partitions)

        wait_until(done, timeout=timeout, what=f"{topic} to its end {ends}")
    finally:
        consumer.close()
    return records


def roi_worker(stream: Stream, *args: str) -> subprocess.CompletedProcess[str]:
    """`roi-worker ARGS` (as `python -m worker`) with the stream's settings."""
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**os.environ, **stream.env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_reconciled(stream: Stream) -> None:
    """`roi-worker reconcile` proves, from the offset ledger, that every offset of every
    partition is accounted for: exit 0. Without --group it also looks for stored rows no batch
    inserted (the stream's database holds this one group only)."""
    result = roi_worker(stream, "reconcile")
    assert result.returncode == 0, f"reconcile exit {result.returncode}:\n{result.stdout}" + (
        result.stderr
    )


def assert_all_accounted_for(
    stream: Stream, valid: list[Sample], invalid: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Every valid event stored exactly once and counted once in the summaries, every invalid
    one dead-lettered (at least once) and nothing else, `verify` and `reconcile` exit 0."""
    produced = {uuid.UUID(s.document["event_id"]) for s in valid}
    rows = query(stream.database_url, "SELECT event_id FROM pattern_executions")
    stored = [row[0] for row in rows]
    lost = produced - set(stored)
    unexpected = set(stored) - produced
    doubled = len(stored) - len(set(stored))
    assert (len(lost), doubled, len(unexpected)) == (0, 0, 0), (
        f"lost {len(lost)}, doubled {doubled}, not produced {len(unexpected)} "
        f"(of {len(produced)}; e.g. lost {sorted(map(str, lost))[:3]})"
    )
    summary = query(
        stream.database_url,
        "SELECT pattern_id, total_executions, successful_executions, total_time_saved_seconds,"
        " total_cost_saved_usd FROM pattern_roi_summary",
    )
    counted = {row[0]: tuple(row[1:]) for row in summary}
    expected: dict[str, tuple[int, int, Decimal, Decimal]] = expected_summary(valid)
    assert counted == expected, "the summaries differ from the events produced"

    if invalid:
        letters = read_to_end(stream.bootstrap_servers, stream.dlq_topic)
        values = {record.value for record in letters}
        wanted = {value for _, value in invalid}
        assert not wanted - values, f"{len(wanted - values)} invalid events not dead-lettered"
        assert not values - wanted, f"{len(values - wanted)} dead letters of valid events"

    verify = roi_worker(stream, "verify")
    assert verify.returncode == 0, f"verify exit {verify.returncode}:\n{verify.stdout}" + (
        verify.stderr
    )
    assert_reconciled(stream)


def wait_stored(
    stream: Stream,
    timeout: float = 180.0,
    *,
    running: Sequence[WorkerProcess] = (),
    logs: Sequence[WorkerProcess] = (),
) -> None:
    """Waits until the group's stored offsets reach the topic's end on every partition. Fails
    at once if a worker of `running` exits; on failure, shows the end of the `logs`."""
    ends = {p: o for p, o in end_offsets(stream.bootstrap_servers, stream.topic).items() if o}

    def caught_up() -> bool:
        for worker in running:
            worker.check_running()
        stored = stored_offsets(stream.database_url, stream.group_id, stream.topic)
        return all(stored.get(p, 0) >= end for p, end in ends.items())

    try:
        wait_until(caught_up, timeout=timeout, interval=0.2, what=f"the group to store {ends}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log_tails(logs or running)}") from None


def log_tails(workers: Sequence[WorkerProcess], lines: int = 25) -> str:
    """The last lines of every worker's log, for failure messages."""
    parts = []
    for index, worker in enumerate(workers):
        tail = worker.log().splitlines()[-lines:]
        parts.append(f"--- worker {index} ({worker.log_path}):\n" + "\n".join(tail))
    return "\n".join(parts)
