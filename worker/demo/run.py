"""`roi-worker demo`: the worker against the local services, fed a realistic sample stream.

1. starts `roi-worker run` as a child process (ROI_CREATE_TOPICS=true, endpoints on 127.0.0.1,
   log in .local/demo-worker.log) and `roi-worker api` as another (on 127.0.0.1:ROI_API_PORT,
   log in .local/demo-api.log), and waits until both /readyz answer 200;
2. publishes 100 days of executions of six patterns with the producer helper (outcomes, quality
   scores, token counts), plus a few invalid messages, exact re-sends (duplicates) and one
   conflicting re-use of an event_id;
3. waits until the consumer_offsets the worker stores with the events reach the topic's end;
4. publishes a seventh pattern's good runs, waits until they are stored, then its failed runs:
   its rating changes twice during the demo;
5. waits until the worker has published every rating transition recorded since the demo began
   and checks that the ratings topic holds each exactly once (worker.demo.ratings);
6. prints the ROI per pattern, the transitions, the metrics URL and the API's URL, then keeps
   the worker and the API running until Ctrl-C or for `seconds`, and stops them with SIGTERM.

The sample stream is worker.demo.stream's, the child processes worker.demo.children's. The sample
figures come from a fixed seed, so every run publishes the same amounts; event_ids are new each
run, so a second run adds as many events again. Money is Decimal throughout.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any, Final

import psycopg

from ..db import offsets as stored_offsets
from ..db.connect import connect
from ..errors import ConfigurationError
from ..kafka.topic_range import bounds, open_consumer
from ..redaction import register_secret
from ..roi.formatting import TENTH, number, percent, table, usd
from ..settings import Settings
from . import ratings
from .children import (
    POLL_SECONDS,
    Child,
    DemoError,
    api_patterns,
    port_in_use,
    wait_ready,
    worker_counts,
)
from .stream import HISTORY, PROFILES, RATING_CHANGE, SEED, plan_rating_change, plan_stream, publish

__all__ = ["DemoError", "run_demo"]

LOG_PATH: Final = Path(".local") / "demo-worker.log"
API_LOG_NAME: Final = "demo-api.log"  # next to the worker's log
# The API's write token, when the demo makes one: in a file only its owner reads, never printed.
API_TOKEN_NAME: Final = "api-token"  # noqa: S105  (a file name) next to the worker's log
_PROG: Final = "roi-worker demo"

STORED_TIMEOUT_SECONDS: Final = 120.0


# --------------------------------------------------------------------------- Kafka


def _end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The end offset of every partition of `topic`."""
    with open_consumer(settings, "roi-worker-demo") as consumer:
        return {partition: end for partition, (_, end) in bounds(consumer, topic).items()}


# --------------------------------------------------------------------------- PostgreSQL

_STORED_EVENTS: Final = "SELECT count(*) FROM pattern_executions WHERE event_id = ANY(%s)"
_ROI: Final = """
SELECT v.pattern_id, v.total_executions, v.successful_executions, v.total_time_saved_seconds,
       v.total_cost_saved_usd, s.total_actual_cost_usd
FROM pattern_roi v JOIN pattern_roi_summary s USING (pattern_id)
ORDER BY v.total_cost_saved_usd DESC, v.pattern_id
"""


def _database_now(conn: psycopg.Connection[Any]) -> datetime:
    """The database's clock: transitions are stamped by it, not by this machine's."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None  # noqa: S101  (SELECT now() returns a row)
    return row[0]  # type: ignore[no-any-return]


def _wait_stored(
    conn: psycopg.Connection[Any], settings: Settings, ends: Mapping[int, int], worker: Child
) -> None:
    """Until the worker's stored offsets reach `ends`, or STORED_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + STORED_TIMEOUT_SECONDS
    while True:
        saved = stored_offsets.load(conn, settings.group_id, [settings.topic])
        stored = {p: position.next_offset for (_, p), position in saved.items()}
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
        if port_in_use(taken):
            raise DemoError(
                f"port {taken} on 127.0.0.1 is in use (another roi-worker?); stop it or set "
                f"{variable} to a free port"
            )
    base_url = f"http://127.0.0.1:{port}"
    api_url = f"http://127.0.0.1:{settings.api_port}"
    with _signals_interrupt():
        worker = Child(log_path)
        _say(f"started the worker; its log: {log_path}")
        api_log = log_path.with_name(API_LOG_NAME)
        token = _api_token(settings, log_path.with_name(API_TOKEN_NAME))
        api = Child(api_log, ("api",), "the API", {"ROI_API_WRITE_TOKENS": token.value})
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


def _say_where(base_url: str, api_url: str, token: _Token) -> None:
    """Where to look next: the page, the endpoints, the commands and their docs."""
    _say(f"Dashboard page: {api_url}/   (open it in a browser; docs/api.md)")
    _say(f"Metrics: {base_url}/metrics   readiness: {base_url}/readyz")
    _say(
        f"API: {api_url}/api/roi-tracking/summary ({api_patterns(api_url)} patterns)   "
        f"docs: {api_url}/docs"
    )
    _say(
        f"POST events with the write token {token.where}: curl -H "
        f'"Authorization: Bearer {token.shell}" -H "Content-Type: application/json" '
        f"--data @event.json {api_url}/api/roi-tracking/executions (docs/api.md)"
    )
    _say(
        f"Month to date, projections and savings by period: {api_url}/api/roi-tracking/savings"
        "?period=day"
    )
    _say(
        f"Snapshots at day 30, 60 and 90: roi-worker report --snapshots, or "
        f"{api_url}/api/roi-tracking/snapshots/{PROFILES[0].pattern_id}"
    )
    _say(
        "Ratings, recommendations, outcomes and trends: roi-worker report --summary "
        "(also --pattern-id ID, --since 7d, --format json; see docs/reports.md)"
    )


def _demo(
    settings: Settings,
    seconds: float | None,
    worker: Child,
    base_url: str,
    *,
    api: Child,
    api_url: str,
    token: _Token,
) -> int:
    topic, dead_letters = settings.topic, settings.dead_letter_topic
    wait_ready(worker, base_url)
    _say(f"worker ready: topic {topic}, group {settings.group_id}, {base_url}")
    wait_ready(api, api_url)
    rng = random.Random(SEED)  # noqa: S311  (sample data)
    now = datetime.now(UTC)
    steps = plan_stream(rng, now)
    rating_phases = plan_rating_change(rng, now)
    dead_letters_before = sum(_end_offsets(settings, dead_letters).values())
    ratings_before = ratings.end_offsets(settings)
    with connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        since = _database_now(conn)
        published = publish(settings, steps)
        counts = published.counts
        _say(f"published {published.total:,} messages to {topic} in {published.seconds:.1f} s")
        started = time.monotonic()
        _wait_stored(conn, settings, _end_offsets(settings, topic), worker)
        waited = time.monotonic() - started
        row = conn.execute(_STORED_EVENTS, (published.event_ids,)).fetchone()
        stored = int(row[0]) if row else 0
        phased = 0
        for phase in rating_phases:  # one after the other, so that each rating is recorded
            phased += publish(settings, phase).total
            _wait_stored(conn, settings, _end_offsets(settings, topic), worker)
        table = format_table(_read_roi(conn))
        transitions = ratings.wait_published(conn, since, worker)
    ratings.check_once(transitions, ratings.published_since(settings, ratings_before))
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
        f"This run published {published.total + phased:,} messages: {counts['event']:,} events "
        f"of {len(PROFILES)} patterns over the last {HISTORY.days} days, {phased} events of "
        f"{RATING_CHANGE.pattern_id} in two phases, "
        f"{_plural(counts['duplicate'], 'exact duplicate')} (stored once), "
        f"{_plural(counts['conflict'], 'conflicting duplicate')} and "
        f"{_plural(counts['invalid'], 'invalid message')}; dead-letter topic {dead_letters} "
        f"received {letters:,}."
    )
    _say()
    _say(
        f"Rating transitions recorded and published to {settings.ratings_topic} this run, each "
        f"once ({RATING_CHANGE.pattern_id} was published good runs first, then failed ones):"
    )
    for transition in transitions:
        _say(f"  {ratings.describe(transition)}")
    _say("All of them: roi-worker ratings (docs/event-contract.md, Rating transitions)")
    _say()
    outcomes = worker_counts(base_url)
    if outcomes:
        _say(
            "The worker counted (roi_worker_messages_total since it started): "
            + ", ".join(f"{outcome} {count:,}" for outcome, count in outcomes.items())
        )
    _say_where(base_url, api_url, token)
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
