"""`roi-worker demo`: the worker against the local services, fed a realistic sample stream.

1. starts `roi-worker run` as a child process (ROI_CREATE_TOPICS=true, endpoints on 127.0.0.1,
   log in .local/demo-worker.log) and `roi-worker api` as another (on 127.0.0.1:ROI_API_PORT,
   log in .local/demo-api.log), and waits until both /readyz answer 200;
2. publishes two weeks of executions of six patterns with the producer helper, plus a few invalid
   messages, exact re-sends (duplicates) and one conflicting re-use of an event_id;
3. waits until the consumer_offsets the worker stores with the events reach the topic's end;
4. prints the ROI per pattern, the metrics URL and the API's URL, then keeps the worker and the
   API running until Ctrl-C or for `seconds`, and stops them with SIGTERM.

The sample figures come from a fixed seed, so every run publishes the same amounts; event_ids are
new each run, so a second run adds as many events again. Money is Decimal throughout.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final, Literal
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

import psycopg
from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from worker.consume.write import BatchWriter
from worker.contract import json_codec
from worker.contract.event import SCHEMA_VERSION
from worker.db.connect import connect
from worker.errors import BrokerUnavailableError, ConfigurationError, RoiWorkerError
from worker.kafka.client import new_consumer
from worker.producer import ExecutionEventProducer
from worker.redaction import register_secret
from worker.roi.formatting import TENTH, number, percent, table, usd
from worker.settings import Settings

LOG_PATH: Final = Path(".local") / "demo-worker.log"
API_LOG_NAME: Final = "demo-api.log"  # next to the worker's log
# The API's write token, when the demo makes one: in a file only its owner reads, never printed.
API_TOKEN_NAME: Final = "api-token"  # noqa: S105  (a file name) next to the worker's log
SEED: Final = 20240614  # the sample's figures; event_ids are fresh uuid4s every run
EVENTS: Final = 2000  # distinct valid events per run
DUPLICATES: Final = 20  # exact re-sends of already published events
CONFLICTS: Final = 1  # re-uses of a published event_id with another actual_cost
HISTORY: Final = timedelta(days=14)  # executed_at spreads over this much of the past
SOURCE: Final = "roi-worker-demo"
_PROG: Final = "roi-worker demo"

READY_TIMEOUT_SECONDS: Final = 60.0
STORED_TIMEOUT_SECONDS: Final = 120.0
POLL_SECONDS: Final = 0.2
STOP_TIMEOUT_SECONDS: Final = 10.0
KAFKA_TIMEOUT_MS: Final = 15000


class DemoError(RoiWorkerError):
    """The demo cannot go on; the message says why and where the worker's log is."""


@dataclass(frozen=True, slots=True)
class Profile:
    """How one pattern behaves: ranges are (low, high) decimal strings, drawn uniformly in
    steps of the last digit of `low` (so "0.50" draws whole cents)."""

    pattern_id: str
    share: int  # relative weight in the stream
    success_rate: float  # a probability, not an amount
    execution_seconds: tuple[str, str]  # the automated run
    estimated_seconds: tuple[str, str]  # the same work by hand
    actual_cost: tuple[str, str]  # USD the automated run costs
    estimated_cost: tuple[str, str]  # USD of the work by hand
    errors: tuple[str, ...]


PROFILES: Final = (
    Profile(
        "test-retry-automation",
        30,
        0.98,
        ("20.0", "90.0"),
        ("900.0", "2400.0"),
        ("0.50", "3.00"),
        ("15.00", "40.00"),
        ("retry budget exhausted", "test still failing after 3 attempts"),
    ),
    Profile(
        "dependency-bump",
        18,
        0.93,
        ("120.0", "600.0"),
        ("1800.0", "5400.0"),
        ("1.50", "6.00"),
        ("30.00", "90.00"),
        ("build broke after the upgrade", "lockfile conflict"),
    ),
    Profile(
        "flaky-test-quarantine",
        15,
        0.82,
        ("60.0", "300.0"),
        ("600.0", "1800.0"),
        ("1.00", "4.00"),
        ("8.00", "24.00"),
        ("could not reproduce the flake", "quarantine PR rejected by review"),
    ),
    Profile(
        "doc-sync",
        14,
        0.95,
        ("10.0", "60.0"),
        ("120.0", "600.0"),
        ("0.10", "0.60"),
        ("1.00", "4.00"),
        ("docs build failed",),
    ),
    Profile(
        "auto-lint-fix",
        12,
        0.60,
        ("60.0", "300.0"),
        ("60.0", "240.0"),
        ("0.80", "2.40"),
        ("0.50", "2.50"),
        ("fix introduced a type error", "formatter and linter disagree", "patch did not apply"),
    ),
    Profile(
        "changelog-writer",
        11,
        0.90,
        ("30.0", "180.0"),
        ("900.0", "2700.0"),
        ("0.20", "1.20"),
        ("8.00", "24.00"),
        ("no merged pull requests found",),
    ),
)


@dataclass(frozen=True, slots=True)
class SampleRun:
    """One execution of a pattern: what `ExecutionEventProducer.track` publishes."""

    pattern_id: str
    event_id: uuid.UUID
    executed_at: datetime
    success: bool
    execution_time_seconds: Decimal
    estimated_time_seconds: Decimal
    actual_cost: Decimal
    estimated_cost: Decimal
    workflow_id: str
    error_message: str | None

    def track(self, producer: ExecutionEventProducer) -> None:
        producer.track(
            self.pattern_id,
            success=self.success,
            execution_time_seconds=self.execution_time_seconds,
            estimated_time_seconds=self.estimated_time_seconds,
            actual_cost=self.actual_cost,
            estimated_cost=self.estimated_cost,
            executed_at=self.executed_at,
            event_id=self.event_id,
            workflow_id=self.workflow_id,
            error_message=self.error_message,
            source=SOURCE,
        )

    def document(self) -> dict[str, Any]:
        """The event as the contract's JSON object (for the deliberately broken messages)."""
        document: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": str(self.event_id),
            "pattern_id": self.pattern_id,
            "executed_at": self.executed_at.isoformat(),
            "success": self.success,
            "execution_time_seconds": self.execution_time_seconds,
            "estimated_time_seconds": self.estimated_time_seconds,
            "actual_cost": self.actual_cost,
            "estimated_cost": self.estimated_cost,
            "workflow_id": self.workflow_id,
            "source": SOURCE,
        }
        if self.error_message is not None:
            document["error_message"] = self.error_message
        return document


StepKind = Literal["event", "duplicate", "conflict", "invalid"]


@dataclass(frozen=True, slots=True)
class Step:
    """One message to publish: a run through the producer helper, or raw bytes (invalid)."""

    kind: StepKind
    run: SampleRun | None = None
    key: bytes = b""
    value: bytes = b""
    why: str = ""


def plan_stream(
    rng: random.Random,
    now: datetime,
    events: int = EVENTS,
    duplicates: int = DUPLICATES,
    conflicts: int = CONFLICTS,
) -> list[Step]:
    """The messages of one demo run, in publishing order (executed_at ascending).

    Every re-send comes after the event it repeats; the invalid messages are spread through
    the stream.
    """
    runs = sorted((_sample_run(rng, now) for _ in range(events)), key=lambda r: r.executed_at)
    after: dict[int, list[Step]] = {}  # index of a run -> the steps that follow it
    originals = rng.sample(range(events), duplicates + conflicts)
    for position, index in enumerate(originals):
        run = runs[index]
        if position < duplicates:
            step = Step("duplicate", run)
        else:
            step = Step("conflict", replace(run, actual_cost=run.actual_cost + Decimal("1.00")))
        after.setdefault(rng.randint(index, events - 1), []).append(step)
    for step in _invalid_steps(rng, now):
        after.setdefault(rng.randrange(events), []).append(step)
    steps: list[Step] = []
    for index, run in enumerate(runs):
        steps.append(Step("event", run))
        steps.extend(after.get(index, ()))
    return steps


def _sample_run(rng: random.Random, now: datetime) -> SampleRun:
    profile = rng.choices(PROFILES, weights=[p.share for p in PROFILES])[0]
    success = rng.random() < profile.success_rate
    age = timedelta(milliseconds=rng.randrange(60_000, int(HISTORY.total_seconds() * 1000)))
    return SampleRun(
        pattern_id=profile.pattern_id,
        event_id=uuid.uuid4(),
        executed_at=now - age,
        success=success,
        execution_time_seconds=_draw(rng, profile.execution_seconds),
        estimated_time_seconds=_draw(rng, profile.estimated_seconds),
        actual_cost=_draw(rng, profile.actual_cost),
        estimated_cost=_draw(rng, profile.estimated_cost),
        workflow_id=f"{profile.pattern_id}-{rng.randrange(16**8):08x}",
        error_message=None if success else rng.choice(profile.errors),
    )


def _draw(rng: random.Random, bounds: tuple[str, str]) -> Decimal:
    """A uniformly drawn Decimal between the bounds, in steps of their last decimal place."""
    low, high = Decimal(bounds[0]), Decimal(bounds[1])
    exponents = [low.as_tuple().exponent, high.as_tuple().exponent]
    exponent = min(e for e in exponents if isinstance(e, int))
    units = rng.randint(int(low.scaleb(-exponent)), int(high.scaleb(-exponent)))
    return Decimal(units).scaleb(exponent)


def _invalid_steps(rng: random.Random, now: datetime) -> list[Step]:
    """Messages the worker must dead-letter, each broken in one realistic way."""

    def broken(why: str, change: Mapping[str, Any], drop: str = "") -> Step:
        run = _sample_run(rng, now)
        document = {k: v for k, v in run.document().items() if k != drop} | dict(change)
        value = json_codec.dumps(document).encode()
        return Step("invalid", run, run.pattern_id.encode(), value, why)

    truncated = _sample_run(rng, now)
    naive = (now - timedelta(hours=rng.randint(1, 300))).replace(tzinfo=None, microsecond=0)
    return [
        Step(
            "invalid",
            truncated,
            truncated.pattern_id.encode(),
            json_codec.dumps(truncated.document()).encode()[:57],
            "bad JSON (truncated)",
        ),
        broken("a missing required field (success)", {}, drop="success"),
        broken("a naive timestamp", {"executed_at": naive.isoformat()}),
        broken("a negative cost", {"actual_cost": Decimal("-0.42")}),
        broken("schema_version 2", {"schema_version": 2}),
    ]


# --------------------------------------------------------------------------- the worker process


class _Worker:
    """`roi-worker run` (or another `command`) as a child process with its output in a log
    file; `name` says which in messages."""

    def __init__(
        self,
        log_path: Path,
        command: Sequence[str] = ("run",),
        name: str = "the worker",
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self.name = name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("wb")
        environment = {
            **os.environ,
            "ROI_CREATE_TOPICS": "true",
            "ROI_METRICS_HOST": "127.0.0.1",
            "ROI_API_HOST": "127.0.0.1",
            **(env or {}),
        }
        # A session of its own: only the demo signals it, once, whatever Ctrl-C reaches.
        self._process = subprocess.Popen(  # noqa: S603  (our own CLI, fixed commands)
            [sys.executable, "-m", "worker", *command],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )

    def pause(self, seconds: float) -> None:
        """Waits up to `seconds`; raises DemoError as soon as the worker has exited."""
        try:
            code = self._process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return
        raise DemoError(f"{self.name} exited with code {code}: {self.last_line()}")

    def run_until_exit(self, seconds: float | None) -> int | None:
        """Waits for `seconds` (None: forever); the worker's exit code if it ended meanwhile."""
        try:
            return self._process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int:
        """SIGTERM, up to STOP_TIMEOUT_SECONDS to finish, then SIGKILL. Returns the exit code."""
        try:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    return self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
                except (subprocess.TimeoutExpired, KeyboardInterrupt):
                    self._process.kill()
            return self._process.wait()
        finally:
            self._log.close()

    def last_line(self) -> str:
        """The worker's last log line (its one-line error, when it failed) and where the log is."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        last = next((line.strip() for line in reversed(lines) if line.strip()), "(no output)")
        return f"{last} (log: {self.log_path})"


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait_ready(worker: _Worker, base_url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    reason = "not answering yet"
    while True:
        try:
            with urlopen(f"{base_url}/readyz", timeout=2) as response:  # noqa: S310  (http://127.0.0.1)
                if response.status == 200:
                    return
        except HTTPError as exc:
            with exc:
                reason = exc.read().decode("utf-8", "replace").strip() or f"HTTP {exc.code}"
        except (URLError, OSError):
            reason = "not answering yet"
        if time.monotonic() > deadline:
            raise DemoError(
                f"{worker.name} was not ready within {READY_TIMEOUT_SECONDS:.0f} s "
                f"(/readyz: {reason}); see {worker.log_path}"
            )
        worker.pause(POLL_SECONDS)


# --------------------------------------------------------------------------- Kafka


def _end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The end offset of every partition of `topic`."""
    try:
        consumer = new_consumer(settings, client_id="roi-worker-demo", enable_auto_commit=False)
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka: {exc}") from exc
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise BrokerUnavailableError(f"Kafka knows no partitions of topic {topic}")
        ends = consumer.end_offsets(
            [TopicPartition(topic, p) for p in sorted(partitions)], timeout_ms=KAFKA_TIMEOUT_MS
        )
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"Kafka: cannot read the end offsets of {topic}: {exc}"
        ) from exc
    finally:
        consumer.close()
    return {tp.partition: int(offset) for tp, offset in ends.items()}


@dataclass(frozen=True, slots=True)
class Published:
    """What one run put on the topic, by kind."""

    counts: dict[StepKind, int]
    event_ids: list[uuid.UUID]
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _publish(settings: Settings, steps: Sequence[Step]) -> Published:
    started = time.monotonic()
    counts: dict[StepKind, int] = {"event": 0, "duplicate": 0, "conflict": 0, "invalid": 0}
    raw = _raw_producer(settings)
    try:
        with ExecutionEventProducer(settings, client_id="roi-worker-demo") as producer:
            for step in steps:
                if step.kind == "invalid":
                    raw.send(settings.topic, key=step.key, value=step.value)
                elif step.run is not None:
                    step.run.track(producer)
                counts[step.kind] += 1
            producer.flush()
        raw.flush(timeout=30)
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka did not take the sample stream: {exc}") from exc
    finally:
        raw.close(timeout=5)
    event_ids = [s.run.event_id for s in steps if s.kind == "event" and s.run is not None]
    return Published(counts, event_ids, time.monotonic() - started)


def _raw_producer(settings: Settings) -> Any:
    """A plain producer for the messages the helper refuses to send (it validates)."""
    try:
        return KafkaProducer(
            **{**settings.kafka_config(), "client_id": "roi-worker-demo-raw"}, acks="all"
        )
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc


# --------------------------------------------------------------------------- PostgreSQL

_STORED_EVENTS: Final = "SELECT count(*) FROM pattern_executions WHERE event_id = ANY(%s)"
_ROI: Final = """
SELECT v.pattern_id, v.total_executions, v.successful_executions, v.total_time_saved_seconds,
       v.total_cost_saved_usd, s.total_actual_cost_usd
FROM pattern_roi v JOIN pattern_roi_summary s USING (pattern_id)
ORDER BY v.total_cost_saved_usd DESC, v.pattern_id
"""


def _wait_stored(
    conn: psycopg.Connection[Any], settings: Settings, ends: Mapping[int, int], worker: _Worker
) -> None:
    """Until the worker's stored offsets reach `ends`, or STORED_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + STORED_TIMEOUT_SECONDS
    offsets = BatchWriter(conn, settings.group_id)  # the worker's own reader of stored offsets
    while True:
        stored = {p: o for (_, p), o in offsets.load_offsets([settings.topic]).items()}
        behind = sum(max(0, end - stored.get(p, 0)) for p, end in ends.items())
        if behind == 0:
            return
        if time.monotonic() > deadline:
            raise DemoError(
                f"the worker has not processed {behind} messages of {settings.topic} within "
                f"{STORED_TIMEOUT_SECONDS:.0f} s (is another member of group {settings.group_id} "
                f"stuck?); see {worker.log_path}"
            )
        worker.pause(POLL_SECONDS)


@dataclass(frozen=True, slots=True)
class PatternRoi:
    """One row of the table: sums from pattern_roi_summary (via the pattern_roi view)."""

    pattern_id: str
    executions: int
    successes: int
    time_saved_seconds: Decimal
    cost_saved_usd: Decimal
    actual_cost_usd: Decimal


def _read_roi(conn: psycopg.Connection[Any]) -> list[PatternRoi]:
    return [
        PatternRoi(str(p), int(n), int(ok), Decimal(t), Decimal(saved), Decimal(spent))
        for p, n, ok, t, saved, spent in conn.execute(_ROI).fetchall()
    ]


# --------------------------------------------------------------------------- output


def format_table(rows: Sequence[PatternRoi]) -> list[str]:
    """The per-pattern table, with a total row; amounts rounded half up for display only."""
    header = (
        "pattern",
        "executions",
        "success",
        "time saved (s)",
        "time saved (h)",
        "cost saved",
        "ROI",
    )
    total = PatternRoi(
        "total",
        sum(r.executions for r in rows),
        sum(r.successes for r in rows),
        sum((r.time_saved_seconds for r in rows), Decimal(0)),
        sum((r.cost_saved_usd for r in rows), Decimal(0)),
        sum((r.actual_cost_usd for r in rows), Decimal(0)),
    )
    first, *body, last = table(
        header, [*(_cells(r) for r in rows), _cells(total)], "<" + ">" * (len(header) - 1)
    )
    rule = "-" * len(first)
    return [first, rule, *body, rule, last]


def _cells(row: PatternRoi) -> tuple[str, ...]:
    rate = Decimal(100 * row.successes) / row.executions if row.executions else None
    roi = 100 * row.cost_saved_usd / row.actual_cost_usd if row.actual_cost_usd else None
    return (
        row.pattern_id,
        f"{row.executions:,}",
        percent(rate),
        number(row.time_saved_seconds),
        number(row.time_saved_seconds / 3600, TENTH),
        usd(row.cost_saved_usd),
        percent(roi),
    )


def _worker_counts(base_url: str) -> dict[str, int]:
    """roi_worker_messages_total by outcome, from the worker's /metrics ({} if unreadable)."""
    try:
        with urlopen(f"{base_url}/metrics", timeout=5) as response:  # noqa: S310  (http://127.0.0.1)
            text = response.read().decode("utf-8")
    except (URLError, OSError):
        return {}
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "roi_worker_messages_total":
                counts[sample.labels.get("outcome", "")] = int(sample.value)
    return counts


def _api_patterns(api_url: str) -> str:
    """How many patterns the API's summary lists, or why it could not be read."""
    try:
        with urlopen(f"{api_url}/api/roi-tracking/summary", timeout=10) as response:  # noqa: S310  (http://127.0.0.1)
            return f"{json_codec.loads(response.read().decode('utf-8'))['total']:,}"
    except (URLError, OSError, ValueError, KeyError) as exc:
        return f"unreadable: {exc}"


@dataclass(frozen=True, slots=True)
class _Token:
    """The API's write token: its value (for the API only), where it is, and how a shell
    command reads it, so that the demo can say how to use it without printing it."""

    value: str
    where: str
    shell: str


def _api_token(settings: Settings, path: Path) -> _Token:
    """ROI_API_WRITE_TOKENS when set; otherwise a new random token in `path` (mode 0600)."""
    given = settings.write_tokens()
    if given:
        return _Token(",".join(given), "of ROI_API_WRITE_TOKENS", "<token>")
    value = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(f"{value}\n")
    register_secret(value)
    return _Token(value, f"in {path}", f"$(cat {path})")


def _say(text: str = "") -> None:
    print(text, flush=True)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


# --------------------------------------------------------------------------- the demo


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end the demo like Ctrl-C does, and Ctrl-C works even where SIGINT was
    inherited as ignored (a background job): the worker is stopped either way."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(settings: Settings, seconds: float | None, *, log_path: Path = LOG_PATH) -> int:
    """Runs the demo (module docstring); keeps the worker up for `seconds` (None: until Ctrl-C).

    Returns 0, or 1 when the worker did not stop cleanly. Raises DemoError, a RoiWorkerError,
    when a step fails, and KeyboardInterrupt when interrupted before the table is printed.
    """
    port = settings.metrics_port
    if port == 0:
        raise ConfigurationError("ROI_METRICS_PORT: the demo needs a fixed port, not 0")
    for taken, variable in ((port, "ROI_METRICS_PORT"), (settings.api_port, "ROI_API_PORT")):
        if _port_in_use(taken):
            raise DemoError(
                f"port {taken} on 127.0.0.1 is in use (another roi-worker?); stop it or set "
                f"{variable} to a free port"
            )
    base_url = f"http://127.0.0.1:{port}"
    api_url = f"http://127.0.0.1:{settings.api_port}"
    with _signals_interrupt():
        worker = _Worker(log_path)
        _say(f"started the worker; its log: {log_path}")
        api_log = log_path.with_name(API_LOG_NAME)
        token = _api_token(settings, log_path.with_name(API_TOKEN_NAME))
        api = _Worker(api_log, ("api",), "the API", {"ROI_API_WRITE_TOKENS": token.value})
        _say(f"started the API; its log: {api_log}")
        try:
            result = _demo(
                settings, seconds, worker, base_url, api=api, api_url=api_url, token=token
            )
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                _say("\ninterrupted; stopping the worker and the API ...")
            api.stop()
            worker.stop()
            raise
        _say("stopping the worker and the API ...")
        api_code = api.stop()
        code = worker.stop()
    for child, exit_code in ((worker, code), (api, api_code)):
        if exit_code != 0:
            print(
                f"{_PROG}: {child.name} did not stop cleanly (exit code {exit_code}): "
                f"{child.last_line()}",
                file=sys.stderr,
            )
    if code != 0 or api_code != 0:
        return 1
    _say("worker and API stopped")
    return result


def _demo(
    settings: Settings,
    seconds: float | None,
    worker: _Worker,
    base_url: str,
    *,
    api: _Worker,
    api_url: str,
    token: _Token,
) -> int:
    topic, dead_letters = settings.topic, settings.dead_letter_topic
    _wait_ready(worker, base_url)
    _say(f"worker ready: topic {topic}, group {settings.group_id}, {base_url}")
    _wait_ready(api, api_url)
    steps = plan_stream(random.Random(SEED), datetime.now(UTC))  # noqa: S311  (sample data)
    dead_letters_before = sum(_end_offsets(settings, dead_letters).values())
    published = _publish(settings, steps)
    counts = published.counts
    _say(f"published {published.total:,} messages to {topic} in {published.seconds:.1f} s")
    started = time.monotonic()
    ends = _end_offsets(settings, topic)
    with connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        _wait_stored(conn, settings, ends, worker)
        waited = time.monotonic() - started
        row = conn.execute(_STORED_EVENTS, (published.event_ids,)).fetchone()
        stored = int(row[0]) if row else 0
        table = format_table(_read_roi(conn))
    letters = sum(_end_offsets(settings, dead_letters).values()) - dead_letters_before
    _say(
        f"the worker processed them all in {waited:.1f} s "
        f"({stored:,} of this run's {len(published.event_ids):,} events are stored)"
    )
    _say()
    for line in table:
        _say(line)
    _say()
    _say(
        f"The table covers everything stored in {settings.redacted_database_url} so far, "
        "earlier demo runs included."
    )
    _say(
        f"This run published {published.total:,} messages: {counts['event']:,} events of "
        f"{len(PROFILES)} patterns over the last {HISTORY.days} days, "
        f"{_plural(counts['duplicate'], 'exact duplicate')} (stored once), "
        f"{_plural(counts['conflict'], 'conflicting duplicate')} and "
        f"{_plural(counts['invalid'], 'invalid message')}; dead-letter topic {dead_letters} "
        f"received {letters:,}."
    )
    outcomes = _worker_counts(base_url)
    if outcomes:
        _say(
            "The worker counted (roi_worker_messages_total since it started): "
            + ", ".join(f"{outcome} {count:,}" for outcome, count in outcomes.items())
        )
    _say(f"Metrics: {base_url}/metrics   readiness: {base_url}/readyz")
    _say(
        f"API: {api_url}/api/roi-tracking/summary ({_api_patterns(api_url)} patterns)   "
        f"docs: {api_url}/docs"
    )
    _say(
        f"POST events with the write token {token.where}: curl -H "
        f'"Authorization: Bearer {token.shell}" -H "Content-Type: application/json" '
        f"--data @event.json {api_url}/api/roi-tracking/executions (docs/api.md)"
    )
    _say(
        "Ratings, recommendations and trends: roi-worker report --summary "
        "(also --pattern-id ID, --since 7d, --format json; see docs/reports.md)"
    )
    if seconds == 0:
        return 0
    try:
        _say(
            "The worker and the API keep running until Ctrl-C."
            if seconds is None
            else f"The worker and the API keep running for {seconds:g} s; Ctrl-C ends them sooner."
        )
        code = worker.run_until_exit(seconds)
    except KeyboardInterrupt:
        _say()
        return 0
    if code is not None:
        raise DemoError(f"the worker exited with code {code}: {worker.last_line()}")
    return 0
