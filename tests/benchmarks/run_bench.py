"""The roi-worker benchmark: throughput, the naive baseline, history, replay, latency and
memory, against the real Kafka broker and PostgreSQL server (docs/benchmarks.md).

Usage (from the repository root; `make bench` sets the two services' variables first):

    make bench                                   # the full run: 1,000,000 events (~13 min)
    make bench ARGS="--events 100000 --history 100000 --latency-seconds 20"   # ~2 min
    .venv/bin/python -m tests.benchmarks.run_bench --help

Needs ROI_KAFKA_BOOTSTRAP_SERVERS and ROI_DATABASE_URL (a role that may create databases).
Every scenario gets its own database (created, migrated, dropped) and consumer group; the
throughput scenarios share one pre-produced topic, the latency scenario has its own. Topics
and databases are removed at the end, also after a failure or Ctrl-C. The table is printed
and, unless --no-record, appended to docs/benchmarks.md with the date, git revision and
machine facts. Not a test: pytest never collects this directory's modules (no test_ names).

Exit codes: 0 the run completed (whether or not the targets were met); 1 a scenario failed;
2 bad arguments or missing services; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Final, NoReturn

import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from tests.benchmarks import latency, report, workload
from tests.benchmarks.processes import (
    Child,
    Usage,
    busy_share,
    free_port,
    machine_ticks,
    python_module,
    usage_of,
    wait_ready,
    wait_stored,
)
from tests.benchmarks.report import Check, Row, verdict
from tests.benchmarks.resources import LOG_DIR, Services
from worker.roi.summaries import rebuild
from worker.settings import Settings

SCENARIOS: Final = ("worker", "naive", "history", "replay", "ceilings", "latency")
SEED: Final = 20261122
RUN_TIMEOUT_SECONDS: Final = 1800.0  # the longest one worker or replay run may take
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_CHECKPOINTS: Final = "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
_CHECKPOINTS_17: Final = "SELECT num_timed + num_requested FROM pg_stat_checkpointer"

# The targets of the issue (docs/benchmarks.md#targets).
TARGET_RATE: Final = 20_000  # events/s end to end, one worker process
TARGET_NAIVE_RATIO: Final = 40.0
TARGET_HISTORY_RATIO: Final = 0.9
TARGET_REPLAY_EVENTS, TARGET_REPLAY_SECONDS = 1_000_000, 60.0
TARGET_P99_SECONDS, TARGET_P99_RATE = 1.0, 2000
TARGET_RSS_BYTES: Final = 250 * report.MB


# --------------------------------------------------------------------------- arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line and exit 2, like every roi-worker command."""
        self.exit(EXIT_USAGE, f"run_bench: {message} (see --help)\n")


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
        return value

    return parse


def _count(text: str) -> int:
    """A number of rows, 0 included."""
    value: int = 0 if text.strip() == "0" else _positive(int)(text)
    return value


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("ROI_"):
        raise argparse.ArgumentTypeError(f"{text!r} is not ROI_NAME=VALUE")
    return name, value


def _consumer_setting(text: str) -> str:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier() or not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not name=value")
    return text


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(
        prog="run_bench",
        description="Benchmarks roi-worker against the real Kafka and PostgreSQL "
        "(docs/benchmarks.md).",
    )
    add = parser.add_argument
    add("--events", type=_positive(int), default=1_000_000, help="events pre-produced")
    add("--history", type=_count, default=1_000_000, help="rows stored before the history run")
    add("--partitions", type=_positive(int), default=3, help="partitions of each topic")
    add("--naive-seconds", type=_positive(float), default=30.0, help="time box of the baseline")
    add("--latency-seconds", type=_positive(float), default=60.0, help="latency run length")
    add("--rate", type=_positive(float), default=2000.0, help="events/s of the latency run")
    add("--compression", choices=("none", "gzip"), default="none", help="of the producers")
    add(
        "--worker-env",
        type=_assignment,
        action="append",
        default=[],
        metavar="ROI_NAME=VALUE",
        help="a setting for the worker and replay processes, e.g. ROI_BATCH_MAX_MESSAGES=500",
    )
    add(
        "--read-config",
        type=_consumer_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a kafka-python consumer setting for the ceiling runs, e.g. "
        "max_partition_fetch_bytes=4194304 (the worker's are not configurable)",
    )
    add("--skip", choices=SCENARIOS, action="append", default=[], help="leave a scenario out")
    add("--no-record", action="store_true", help="do not append to docs/benchmarks.md")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- the run


@dataclass
class Bench:
    args: argparse.Namespace
    services: Services
    rows: dict[str, Row] = field(default_factory=dict)
    latencies: latency.Latencies | None = None
    peak_rss: dict[str, int] = field(default_factory=dict)

    @property
    def compression(self) -> str | None:
        return None if self.args.compression == "none" else self.args.compression

    def wanted(self, scenario: str) -> bool:
        return scenario not in self.args.skip

    def add(self, key: str, row: Row) -> None:
        self.rows[key] = row
        if row.peak_rss_bytes is not None and key != "naive":
            self.peak_rss[key] = row.peak_rss_bytes
        print(f"  {row.scenario}: {row.rate:,.0f} events/s  {row.notes}", flush=True)

    def worker_env(self, topic: str, group: str, database_url: str, port: int) -> dict[str, str]:
        return {
            **os.environ,
            "ROI_KAFKA_BOOTSTRAP_SERVERS": self.services.bootstrap_servers,
            "ROI_DATABASE_URL": database_url,
            "ROI_TOPIC": topic,
            "ROI_DLQ_TOPIC": f"{topic}.dlq",
            "ROI_GROUP_ID": group,
            "ROI_METRICS_HOST": "127.0.0.1",
            "ROI_METRICS_PORT": str(port),
            "ROI_LOG_LEVEL": "INFO",
            **dict(self.args.worker_env),
        }


def say(text: str) -> None:
    print(text, flush=True)


def produce_topic(bench: Bench) -> tuple[str, dict[int, int]]:
    """The topic every throughput scenario reads, with `--events` events."""
    args = bench.args
    topic = bench.services.topic("throughput", args.partitions)
    say(f"producing {args.events:,} events to {topic} ...")
    produced = workload.produce(
        bench.services.bootstrap_servers, topic, args.events, SEED, bench.compression
    )
    ends = end_offsets(bench.services.bootstrap_servers, topic)
    if sum(ends.values()) != args.events:
        raise RuntimeError(f"{topic} holds {sum(ends.values()):,} events, not {args.events:,}")
    size = produced.bytes / produced.events
    bench.add(
        "produce",
        Row(
            "produce (benchmark)",
            produced.events,
            produced.seconds,
            produced.cpu_seconds,
            notes=f"{size:.0f} B/event, compression {args.compression}, acks=all",
        ),
    )
    return topic, ends


def end_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, client_id="roi-bench")
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def worker_run(bench: Bench, topic: str, ends: dict[int, int], history: int) -> Row:
    """One `roi-worker run` from process start until its group stored the whole topic."""
    services = bench.services
    label = "history" if history else "worker"
    url = services.database(label)
    loaded = ""
    if history:
        loaded = f"; {history:,} rows loaded in {store_history(url, history):.0f} s"
    group = f"roi-bench-{label}-{uuid.uuid4().hex[:8]}"
    bench.services.dead_letter_topic(topic)
    say(f"{label}: roi-worker run on {sum(ends.values()):,} events ...")
    checkpoints = _checkpoints(url)
    ticks = machine_ticks()
    child = services.start(
        label, python_module("worker", "run"), bench.worker_env(topic, group, url, free_port())
    )
    with psycopg.connect(url, autocommit=True) as conn:
        caught = wait_stored(conn, child, group, topic, ends, timeout=RUN_TIMEOUT_SECONDS)
    busy = busy_share(ticks, machine_ticks())
    checkpoints = _checkpoints(url) - checkpoints
    code = child.stop()
    if code != 0:
        raise RuntimeError(f"the worker exited with {code} after SIGTERM: {child.tail()}")
    events = sum(ends.values())
    stored = _check_stored(url, events + history)
    name = f"worker, {history:,} rows stored" if history else "worker, empty database"
    return Row(
        name,
        events,
        caught.seconds,
        caught.usage.cpu_seconds,
        caught.usage.peak_rss_bytes,
        f"worker {caught.usage.cpu_seconds / caught.seconds:.0%} of a CPU, machine "
        f"{busy:.0%} busy; first batch stored {caught.first_batch_seconds:.1f} s after start; "
        f"{checkpoints} PostgreSQL checkpoints during the run; {stored}{loaded}",
    )


def _checkpoints(url: str) -> int:
    """Checkpoints PostgreSQL has started since its statistics were reset (a checkpoint
    during a run writes back dirty pages and slows it; a non-superuser cannot force one)."""
    with psycopg.connect(url) as conn:
        newer = conn.info.server_version >= 170000  # PostgreSQL 17 moved the counters
        row = conn.execute(_CHECKPOINTS_17 if newer else _CHECKPOINTS).fetchone()
    return int(row[0]) if row else 0


def store_history(url: str, rows: int) -> float:
    """Stores `rows` executions and their summaries, then vacuums: returns the seconds taken."""
    say(f"history: storing {rows:,} rows ...")
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        workload.store_history(conn, rows, workload.base_time())
        rebuild(conn)
        conn.execute("VACUUM (ANALYZE) pattern_executions")
    return time.monotonic() - started


def _check_stored(url: str, expected: int) -> str:
    """Every event stored once and counted once by the summaries; raises otherwise."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT count(*) FROM pattern_executions").fetchone()
        counted = conn.execute(
            "SELECT coalesce(sum(total_executions), 0) FROM pattern_roi_summary"
        ).fetchone()
    found = (rows[0] if rows else 0, counted[0] if counted else 0)
    if found != (expected, expected):
        raise RuntimeError(f"stored {found[0]:,} rows, summaries count {found[1]:,}: {expected:,}")
    return f"{expected:,} rows and summary counts checked"


def naive_run(bench: Bench, topic: str) -> Row:
    """The baseline consumer, time-boxed."""
    seconds = bench.args.naive_seconds
    say(f"naive: the per-event consumer for {seconds:g} s ...")
    url = bench.services.database("naive")
    result, usage = _consumer(
        bench,
        "naive",
        ["naive", "--topic", topic, "--group", f"roi-bench-naive-{uuid.uuid4().hex[:8]}"],
        {"ROI_DATABASE_URL": url},
        extra=["--seconds", str(seconds)],
    )
    return Row(
        "naive per-event consumer",
        int(result["events"]),
        float(result["seconds"]),
        usage.cpu_seconds,
        usage.peak_rss_bytes,
        f"time-boxed: {seconds:g} s from its first event",
    )


def ceiling_runs(bench: Bench, topic: str) -> list[tuple[str, Row]]:
    """kafka-python alone, then with the worker's decode/validate/fingerprint: no database."""
    rows = []
    for key, name, extra, notes in (
        ("read", "kafka-python read only", [], "no group, nothing stored: the broker+client cost"),
        (
            "parse",
            "read + decode/validate/fingerprint",
            ["--parse"],
            "worker.consume.prepare.prepare on every batch; nothing stored",
        ),
    ):
        say(f"ceilings: {name} ...")
        settings = [f"--config={setting}" for setting in bench.args.read_config]
        result, usage = _consumer(
            bench, key, ["read", "--topic", topic, *extra, *settings], {}, extra=[]
        )
        rows.append(
            (
                key,
                Row(
                    name,
                    int(result["events"]),
                    float(result["seconds"]),
                    usage.cpu_seconds,
                    usage.peak_rss_bytes,
                    notes,
                ),
            )
        )
    return rows


def _consumer(
    bench: Bench, name: str, args: list[str], env: dict[str, str], extra: list[str]
) -> tuple[dict[str, Any], Usage]:
    result_path = LOG_DIR / f"{name}.json"
    result_path.unlink(missing_ok=True)
    environment = {
        **os.environ,
        "ROI_KAFKA_BOOTSTRAP_SERVERS": bench.services.bootstrap_servers,
        **env,
    }
    argv = python_module("tests.benchmarks.consumers", *args, *extra, "--result", str(result_path))
    child = bench.services.start(name, argv, environment)
    code = child.wait(RUN_TIMEOUT_SECONDS)
    if code != 0 or child.usage is None:
        raise RuntimeError(f"the {name} consumer exited with {code}: {child.tail()}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result, child.usage


def replay_run(bench: Bench, topic: str, ends: dict[int, int]) -> Row:
    """`roi-worker replay --from-beginning` into an empty database, start to exit."""
    url = bench.services.database("replay")
    group = f"roi-bench-replay-{uuid.uuid4().hex[:8]}"
    events = sum(ends.values())
    say(f"replay: roi-worker replay --from-beginning of {events:,} events ...")
    argv = python_module("worker", "replay", "--from-beginning", "--topic", topic, "--group", group)
    ticks = machine_ticks()
    child = bench.services.start(
        "replay", argv, bench.worker_env(topic, f"{group}-live", url, free_port())
    )
    code = child.wait(RUN_TIMEOUT_SECONDS)
    seconds = time.monotonic() - child.started
    busy = busy_share(ticks, machine_ticks())
    if code != 0 or child.usage is None:
        raise RuntimeError(f"the replay exited with {code}: {child.tail()}")
    stored = _check_stored(url, events)
    return Row(
        "replay into an empty database",
        events,
        seconds,
        child.usage.cpu_seconds,
        child.usage.peak_rss_bytes,
        f"replay {child.usage.cpu_seconds / seconds:.0%} of a CPU, machine {busy:.0%} busy; "
        f"process start to exit; {stored}",
    )


def latency_run(bench: Bench) -> Row:
    """A fresh topic and worker; events at a steady rate; produce-to-summary latencies."""
    args, services = bench.args, bench.services
    topic = services.topic("latency", args.partitions)
    bench.services.dead_letter_topic(topic)
    url = services.database("latency")
    group = f"roi-bench-latency-{uuid.uuid4().hex[:8]}"
    port = free_port()
    child = services.start(
        "latency", python_module("worker", "run"), bench.worker_env(topic, group, url, port)
    )
    wait_ready(child, port)
    _warm_up(bench, topic, url, group, child)
    watcher = latency.OffsetWatcher(url, group, topic)
    watcher.start()
    say(f"latency: {args.rate:,.0f} events/s for {args.latency_seconds:g} s ...")
    before = _usage_now(child)
    try:
        measured = latency.measure(
            services.bootstrap_servers,
            topic,
            watcher,
            rate=args.rate,
            seconds=args.latency_seconds,
            seed=SEED + 1,
        )
    finally:
        watcher.stop()
    after = _usage_now(child)
    code = child.stop()
    if code != 0:
        raise RuntimeError(f"the worker exited with {code} after SIGTERM: {child.tail()}")
    bench.latencies = measured
    p50, p95, p99 = (measured.percentile(f) for f in (0.5, 0.95, 0.99))
    return Row(
        f"latency at {args.rate:,.0f}/s",
        measured.sent,
        measured.seconds,
        after.cpu_seconds - before.cpu_seconds,
        after.peak_rss_bytes,
        f"produce to summary: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {measured.values[-1] * 1000:.0f} ms",
    )


def _usage_now(child: Child) -> Usage:
    child.check_running("the worker")
    return usage_of(child.pid)


def _warm_up(bench: Bench, topic: str, url: str, group: str, child: Child) -> None:
    """One event per partition, stored before timing starts: the group has joined."""
    partitions = bench.args.partitions
    producer = workload.producer(bench.services.bootstrap_servers, None)
    try:
        for partition, (key, value) in enumerate(
            workload.events(partitions, SEED + 2, workload.base_time())
        ):
            producer.send(topic, key=key, value=value, partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    ends = dict.fromkeys(range(partitions), 1)
    with psycopg.connect(url, autocommit=True) as conn:
        wait_stored(conn, child, group, topic, ends, timeout=120)


# --------------------------------------------------------------------------- targets


def target_checks(bench: Bench) -> list[Check]:
    rows, args = bench.rows, bench.args
    worker, naive, history = rows.get("worker"), rows.get("naive"), rows.get("history")
    return [
        _check(
            f">= {TARGET_RATE:,} events/s end to end",
            worker,
            lambda w: (w.rate >= TARGET_RATE, f"{w.rate:,.0f} events/s"),
        ),
        _pair(
            f">= {TARGET_NAIVE_RATIO:g}x the naive consumer",
            worker,
            naive,
            lambda w, n: (w.rate / n.rate >= TARGET_NAIVE_RATIO, f"{w.rate / n.rate:,.1f}x"),
        ),
        _pair(
            f"with {args.history:,} rows stored >= {TARGET_HISTORY_RATIO:.0%} of empty",
            history,
            worker,
            lambda h, w: (
                h.rate / w.rate >= TARGET_HISTORY_RATIO,
                f"{h.rate / w.rate:.0%} ({h.rate:,.0f} vs {w.rate:,.0f} events/s)",
            ),
        ),
        _check(
            f"replay of {TARGET_REPLAY_EVENTS:,} events < {TARGET_REPLAY_SECONDS:g} s",
            rows.get("replay"),
            _replay_verdict,
        ),
        _latency_check(bench),
        _rss_check(bench),
    ]


def _check(target: str, row: Row | None, judge: Any) -> Check:
    if row is None:
        return Check(target, "not measured", "")
    ok, figure = judge(row)
    return Check(target, verdict(ok), figure)


def _pair(target: str, first: Row | None, second: Row | None, judge: Any) -> Check:
    if first is None or second is None or not second.rate:
        return Check(target, "not measured", "")
    ok, figure = judge(first, second)
    return Check(target, verdict(ok), figure)


def _replay_verdict(row: Row) -> tuple[bool, str]:
    seconds = TARGET_REPLAY_EVENTS / row.rate
    if row.events == TARGET_REPLAY_EVENTS:
        return seconds < TARGET_REPLAY_SECONDS, f"{row.seconds:.1f} s"
    return (
        seconds < TARGET_REPLAY_SECONDS,
        f"{seconds:.0f} s at the {row.rate:,.0f} events/s measured on {row.events:,}",
    )


def _latency_check(bench: Bench) -> Check:
    target = f"p99 produce-to-summary < {TARGET_P99_SECONDS:g} s at {TARGET_P99_RATE:,}/s"
    measured = bench.latencies
    if measured is None:
        return Check(target, "not measured", "")
    p99 = measured.percentile(0.99)
    rate = "" if bench.args.rate == TARGET_P99_RATE else f" (measured at {bench.args.rate:,.0f}/s)"
    return Check(target, verdict(p99 < TARGET_P99_SECONDS), f"{p99 * 1000:.0f} ms{rate}")


def _rss_check(bench: Bench) -> Check:
    target = f"peak RSS < {TARGET_RSS_BYTES // report.MB} MB in every worker/replay run"
    if not bench.peak_rss:
        return Check(target, "not measured", "")
    key, peak = max(bench.peak_rss.items(), key=lambda item: item[1])
    return Check(target, verdict(peak < TARGET_RSS_BYTES), f"{peak / report.MB:.0f} MB ({key})")


# --------------------------------------------------------------------------- main


def effective_settings(bench: Bench) -> dict[str, str]:
    """The knobs the worker and replay ran with (docs/benchmarks.md#tuning-knobs)."""
    given = {**os.environ, **dict(bench.args.worker_env)}
    fields = Settings.model_fields
    knobs = {}
    for name in ("batch_max_messages", "batch_max_seconds", "kafka_max_partition_fetch_bytes"):
        variable = f"ROI_{name.upper()}"
        knobs[variable] = given.get(variable, f"{fields[name].default} (default)")
    others = {k: v for k, v in dict(bench.args.worker_env).items() if k not in knobs}
    settings = {
        "worker settings": ", ".join(f"{k}={v}" for k, v in {**knobs, **others}.items()),
        "topics": f"{bench.args.partitions} partitions, producer compression "
        f"{bench.args.compression}",
    }
    if bench.args.read_config:
        settings["ceiling runs' consumer"] = ", ".join(bench.args.read_config)
    return settings


def run(bench: Bench) -> None:
    want = bench.wanted
    if any(want(s) for s in ("worker", "naive", "history", "replay", "ceilings")):
        topic, ends = produce_topic(bench)
        if want("worker"):
            bench.add("worker", worker_run(bench, topic, ends, history=0))
        if want("naive"):
            bench.add("naive", naive_run(bench, topic))
        if want("history") and bench.args.history:
            bench.add("history", worker_run(bench, topic, ends, history=bench.args.history))
        if want("replay"):
            bench.add("replay", replay_run(bench, topic, ends))
        if want("ceilings"):
            for key, row in ceiling_runs(bench, topic):
                bench.add(key, row)
    if want("latency"):
        bench.add("latency", latency_run(bench))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise KeyboardInterrupt


def _services() -> Services:
    bootstrap = os.environ.get("ROI_KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("ROI_DATABASE_URL")
    if not bootstrap or not database:
        print(
            "run_bench: ROI_KAFKA_BOOTSTRAP_SERVERS and ROI_DATABASE_URL must be set "
            "(`make bench` sets them from `make services`)",
            file=sys.stderr,
        )
        sys.exit(EXIT_USAGE)
    return Services(bootstrap, database)


@contextlib.contextmanager
def _cleaned_up(services: Services) -> Iterator[None]:
    try:
        yield
    finally:
        say("cleaning up the topics and databases ...")
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip this
        services.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    services = _services()
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.now(UTC)
    command = "python -m tests.benchmarks.run_bench " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    facts = report.machine_facts(services.bootstrap_servers, services.database_url)
    bench = Bench(args, services)
    say(f"{command.strip()}  (logs in {LOG_DIR.relative_to(report.REPO)}/)")
    try:
        with _cleaned_up(services):
            run(bench)
    except KeyboardInterrupt:
        print("run_bench: interrupted; nothing recorded", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (RuntimeError, TimeoutError, OSError, psycopg.Error, KafkaError) as exc:
        print(f"run_bench: {exc}", file=sys.stderr)
        return EXIT_FAILED
    rows = list(bench.rows.values())
    checks = target_checks(bench)
    say("")
    say(report.table(rows))
    say("")
    say(report.checks_text(checks))
    if not args.no_record:
        settings = effective_settings(bench)
        text = report.section(
            when=started,
            command=command.strip(),
            facts=facts,
            settings=settings,
            rows=rows,
            checks=checks,
        )
        report.append(text)
        say(f"\nrecorded in {report.DOC.relative_to(report.REPO)}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
