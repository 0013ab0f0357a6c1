"""`roi-worker api` against the real services: events POSTed to it reach the database through a
real worker, every read endpoint answers the numbers of `roi-worker report --format json`, and
bad input, unknown patterns and unavailable services get 422, 404 and 503, never 500."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from kafka import KafkaAdminClient
from pydantic import SecretStr

from tests.api_harness import WRITE_TOKEN, ApiProcess, asgi_request
from tests.fixtures.services import Services, create_topic, delete_topics, new_database
from tests.helpers import wait_until
from tests.worker_harness import PROCESS_TIMEOUT, Stream, WorkerProcess, end_offsets, free_port
from worker import schemas
from worker.api import app as api_app
from worker.api import backends, ingest
from worker.api.backends import Publisher
from worker.api.cache import TtlCache
from worker.api.routes import ingestion
from worker.contract import json_codec
from worker.contract.event import ExecutionEvent
from worker.db.migrate import load_migrations, migrate
from worker.errors import BrokerUnavailableError
from worker.roi.usage_stats import truncate
from worker.settings import Settings

ROOT = Path(__file__).parents[2]
ROI = "/api/roi-tracking"
# (pattern, executions, success probability, actual cost range in cents): a good one, a losing
# one, one with a slash in its id (a path segment of its own) and one too small to be rated.
PATTERNS = (
    ("api-good", 120, 0.97, (10, 90)),
    ("api-losing", 60, 0.40, (200, 900)),
    ("team/api-slash", 40, 0.85, (10, 200)),
    ("api-few", 5, 1.0, (10, 20)),
)


@dataclass(frozen=True)
class Live:
    stream: Stream
    api: ApiProcess
    documents: list[dict[str, Any]]
    accepted: list[str]  # the event_ids of the 202 answer
    now: datetime


def _documents(now: datetime) -> list[dict[str, Any]]:
    rng = random.Random(20261122)
    documents = []
    for pattern, count, success_rate, (low, high) in PATTERNS:
        for _ in range(count):
            executed = now - timedelta(minutes=rng.randrange(5, 12 * 24 * 60))
            documents.append(
                {
                    "schema_version": 1,
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "pattern_id": pattern,
                    "executed_at": executed.isoformat(),
                    "success": rng.random() < success_rate,
                    "execution_time_seconds": Decimal(rng.randint(100, 9000)) / 100,
                    "estimated_time_seconds": rng.randint(60, 1800),
                    "actual_cost": str(Decimal(rng.randint(low, high)) / 100),
                    "estimated_cost": Decimal(rng.randint(100, 3000)) / 100,
                    "workflow_id": f"wf-{rng.randrange(10**6)}",
                }
            )
    return documents


@pytest.fixture(scope="module")
def live(
    services: Services, kafka_admin: KafkaAdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """A topic, a migrated database, a worker and the API; the module's events are POSTed to
    the API in one request and stored by the worker before any test runs."""
    logs = tmp_path_factory.mktemp("api")
    topic = create_topic(kafka_admin, "api", 3)
    dlq = create_topic(kafka_admin, "api-dlq", 1)
    with new_database(services, "api") as url:
        migrate(url, load_migrations())
        stream = Stream(
            services.kafka_bootstrap_servers, topic, dlq, f"g-{uuid.uuid4().hex[:8]}", url
        )
        worker = WorkerProcess(stream, logs / "worker.log")
        api = ApiProcess(stream.env(), logs / "api.log")
        try:
            worker.wait_ready()
            api.wait_up("/readyz")
            now = datetime.now(UTC)
            documents = _documents(now)
            status, body = api.post(f"{ROI}/executions", json_codec.dumps(documents).encode())
            assert status == 202, body
            ids = [d["event_id"] for d in documents]
            wait_until(
                lambda: _stored(url) == len(ids),
                timeout=PROCESS_TIMEOUT,
                what=f"the worker to store the {len(ids)} POSTed events (log: {worker.log_path})",
            )
            yield Live(stream, api, documents, body["event_ids"], now)
        finally:
            api.close()
            worker.close()
    delete_topics(kafka_admin, topic, dlq)


def _stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pattern_executions").fetchone()
    return int(row[0]) if row else 0


def _report(live: Live, *args: str) -> dict[str, Any]:
    """`roi-worker report ... --format json` on the same database."""
    result = subprocess.run(
        [sys.executable, "-m", "worker", "report", *args, "--format", "json"],
        env={**_env_without_roi(), **live.stream.env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _env_without_roi() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}


def _without_percentiles(pattern: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pattern.items() if k != "execution_time_percentiles"}


def _ok(live: Live, path: str) -> Any:
    status, body = live.api.get(path)
    assert status == 200, (path, body)
    return body


# --------------------------------------------------------------------------- ingestion


def test_posted_events_reach_the_database_through_the_worker(live: Live) -> None:
    """202 lists the event_ids in request order; the worker stored every event exactly as
    POSTed (exact amounts, no float on the way)."""
    assert live.accepted == [d["event_id"] for d in live.documents]
    by_id = {d["event_id"]: d for d in live.documents}
    with psycopg.connect(live.stream.database_url) as conn:
        rows = conn.execute(
            "SELECT event_id::text, pattern_id, actual_cost, estimated_cost, "
            "execution_time_seconds, source_topic FROM pattern_executions"
        ).fetchall()
    assert len(rows) == len(by_id)
    for event_id, pattern, actual, estimated, seconds, topic in rows:
        sent = by_id[event_id]
        assert (pattern, topic) == (sent["pattern_id"], live.stream.topic)
        assert actual == Decimal(sent["actual_cost"])
        assert estimated == sent["estimated_cost"]
        assert seconds == sent["execution_time_seconds"]


def test_invalid_events_get_422_with_every_field_problem_and_nothing_is_published(
    live: Live,
) -> None:
    """One bad event in an array rejects the request: each problem names ["body", index,
    field]; the topic receives nothing."""
    before = end_offsets(live.stream.bootstrap_servers, live.stream.topic)
    good, bad = dict(live.documents[0]), dict(live.documents[1])
    bad["actual_cost"] = "-1"
    del bad["success"]
    status, body = live.api.post(f"{ROI}/executions", json_codec.dumps([good, bad]).encode())
    assert status == 422, body
    problems = {tuple(p["loc"]): p for p in body["detail"]}
    assert set(problems) == {("body", 1, "actual_cost"), ("body", 1, "success")}
    assert problems[("body", 1, "success")]["msg"] == "is required"
    status, body = live.api.post(f"{ROI}/executions", json_codec.dumps(bad).encode())
    assert status == 422
    assert {tuple(p["loc"]) for p in body["detail"]} == {
        ("body", "actual_cost"),
        ("body", "success"),
    }
    assert end_offsets(live.stream.bootstrap_servers, live.stream.topic) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "is not valid JSON"),
        (b"[]", "at least one event"),
        (b"42", "an event object or an array"),
        (b"\xff\xfe", "is not UTF-8"),
        (json.dumps([1] * 1001).encode(), "at most 1,000 per request"),
    ],
)
def test_bodies_that_are_not_events_get_422_with_a_clear_message(
    live: Live, body: bytes, message: str
) -> None:
    """Not JSON, not an event or array of events, or over 1,000 events: one problem at body."""
    status, answer = live.api.post(f"{ROI}/executions", body)
    assert status == 422, answer
    (problem,) = answer["detail"]
    assert problem["loc"] == ["body"]
    assert message in problem["msg"]


def test_a_body_over_the_size_limit_gets_413(live: Live) -> None:
    """A body announced as over 16 MiB is refused before it is read: the answer comes while
    the client has sent only the headers."""
    connection = http.client.HTTPConnection("127.0.0.1", live.api.port, timeout=30)
    try:
        connection.putrequest("POST", f"{ROI}/executions")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Authorization", f"Bearer {WRITE_TOKEN}")
        connection.putheader("Content-Length", str(16 * 1024 * 1024 + 1))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert "over" in json.loads(response.read())["detail"]
    finally:
        connection.close()


# --------------------------------------------------------------------------- reads


def test_summary_has_the_numbers_of_the_report(live: Live) -> None:
    """Every pattern and the overall figures equal `report --summary --format json` (the
    summary leaves out only the execution-time percentiles), all time and for a window."""
    for query, args in (("", ()), ("?since=7d", ("--since", "7d"))):
        joiner = "&" if query else "?"
        page = _ok(live, f"{ROI}/summary{query}{joiner}limit=1000")
        report = _report(live, "--summary", *args)
        assert page["patterns"] == [_without_percentiles(p) for p in report["patterns"]]
        assert page["overall"] == report["overall"]
        assert page["window"] == report["window"]
        assert page["total"] == len(report["patterns"])


def test_summary_pages_are_stable_and_bounded(live: Live) -> None:
    """limit/offset pages, ordered by pattern_id, add up to the whole list; total counts all."""
    whole = _ok(live, f"{ROI}/summary")["patterns"]
    ids = [p["pattern_id"] for p in whole]
    assert ids == sorted(ids) == sorted(p for p, *_ in PATTERNS)
    pages = [_ok(live, f"{ROI}/summary?limit=3&offset={o}") for o in (0, 3)]
    assert [p["pattern_id"] for page in pages for p in page["patterns"]] == ids
    assert {page["total"] for page in pages} == {len(ids)}
    assert _ok(live, f"{ROI}/summary?offset=50")["patterns"] == []


def test_pattern_and_report_have_the_numbers_of_the_report(live: Live) -> None:
    """/pattern/{id} is the report's entry without percentiles, /report/{id} the whole entry,
    a slash in the id included."""
    for pattern in ("api-good", "team/api-slash"):
        report = _report(live, "--pattern-id", pattern)
        (entry,) = report["patterns"]
        detail = _ok(live, f"{ROI}/pattern/{pattern}")
        assert detail["pattern"] == _without_percentiles(entry)
        full = _ok(live, f"{ROI}/report/{pattern}")
        assert full["pattern"] == entry
        assert entry["execution_time_percentiles"] is not None
        assert full["window"] == report["window"]


def test_report_lists_the_latest_executions_with_their_savings(live: Live) -> None:
    """Newest first, as many as asked, with net savings by the methodology (a failed run
    loses its own cost) and the outcome, as sent or derived from success."""
    full = _ok(live, f"{ROI}/report/api-losing?recent=5")
    recent = full["recent_executions"]
    sent = sorted(
        (d for d in live.documents if d["pattern_id"] == "api-losing"),
        key=lambda d: (d["executed_at"], d["event_id"]),
        reverse=True,
    )[:5]
    assert [r["event_id"] for r in recent] == [d["event_id"] for d in sent]
    for row, document in zip(recent, sent, strict=True):
        actual = Decimal(document["actual_cost"])
        saved = document["estimated_cost"] - actual if document["success"] else -actual
        assert Decimal(row["cost_saved_usd"]) == saved
        assert row["actual_cost_usd"] == format(actual, "f")
        derived = "success" if document["success"] else "failure"
        assert row["outcome"] == (document.get("outcome") or derived)
    assert _ok(live, f"{ROI}/report/api-losing?recent=0")["recent_executions"] == []


def test_rankings_are_those_of_the_report(live: Live) -> None:
    """top-performers and underperformers list the report's patterns in the report's order."""
    report = _report(live, "--summary", "--limit", "2")
    top = _ok(live, f"{ROI}/top-performers?limit=2")
    under = _ok(live, f"{ROI}/underperformers?limit=2")
    assert [p["pattern_id"] for p in top["patterns"]] == report["top_performers"]
    assert report["top_performers"][0] == "api-good"
    assert [p["pattern_id"] for p in under["patterns"]] == report["underperformers"]
    assert report["underperformers"] == ["api-losing"]
    by_id = {p["pattern_id"]: p for p in report["patterns"]}
    assert under["patterns"][0] == _without_percentiles(by_id["api-losing"])


# --------------------------------------------------------------------------- usage statistics


@pytest.mark.parametrize(
    ("time_range", "group_by"), [("7d", "day"), ("1d", "hour"), ("30d", "week")]
)
def test_usage_stats_count_every_bucket_zeros_included(
    live: Live, time_range: str, group_by: str
) -> None:
    """Every UTC bucket of the range is listed once, weeks start on Monday, and each pattern's
    counts equal the POSTed events per bucket, zeros included."""
    body = _ok(
        live,
        f"/api/pattern-analytics/usage-stats?time_range={time_range}&group_by={group_by}",
    )
    buckets = [datetime.fromisoformat(b) for b in body["buckets"]]
    step = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
    assert all(b - a == step[group_by] for a, b in itertools.pairwise(buckets))
    if group_by == "week":
        assert {b.weekday() for b in buckets} == {0}
    start, end = datetime.fromisoformat(body["start"]), datetime.fromisoformat(body["end"])
    assert (start, end) == (buckets[0], buckets[-1] + step[group_by])
    expected: dict[str, Counter[datetime]] = {}
    for document in live.documents:
        executed = datetime.fromisoformat(document["executed_at"])
        if start <= executed < end:
            bucket = truncate(executed, group_by)  # type: ignore[arg-type]
            expected.setdefault(document["pattern_id"], Counter())[bucket] += 1
    assert [p["pattern_id"] for p in body["patterns"]] == sorted(expected)
    for series in body["patterns"]:
        counts = expected[series["pattern_id"]]
        assert series["executions"] == [counts[b] for b in buckets]
        assert series["total_executions"] == sum(counts.values())
        assert all(
            0 <= ok <= n
            for ok, n in zip(series["successful_executions"], series["executions"], strict=True)
        )


def test_usage_stats_of_one_pattern(live: Live) -> None:
    """pattern_id narrows the answer to that pattern."""
    body = _ok(live, "/api/pattern-analytics/usage-stats?pattern_id=api-few&time_range=30d")
    (series,) = body["patterns"]
    assert series["pattern_id"] == "api-few"
    assert series["total_executions"] == 5


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "path",
    [
        f"{ROI}/pattern/no-such-pattern",
        f"{ROI}/report/no-such-pattern",
        "/api/pattern-analytics/usage-stats?pattern_id=no-such-pattern",
    ],
)
def test_unknown_patterns_get_404_with_a_json_body(live: Live, path: str) -> None:
    status, body = live.api.get(path)
    assert status == 404
    assert body == {"detail": "no pattern 'no-such-pattern': no execution of it is stored"}


def test_a_bad_since_is_shown_in_its_problem(live: Live) -> None:
    """A `since` of the right shape but out of range is echoed back, like every bad value."""
    status, body = live.api.get(f"{ROI}/summary?since=2999-01-01")
    assert status == 422, body
    (problem,) = body["detail"]
    assert (problem["loc"], problem["input"]) == (["query", "since"], "2999-01-01")


@pytest.mark.parametrize(
    ("path", "loc"),
    [
        (f"{ROI}/summary?limit=0", ["query", "limit"]),
        (f"{ROI}/summary?limit=1001", ["query", "limit"]),
        (f"{ROI}/summary?offset=-1", ["query", "offset"]),
        (f"{ROI}/summary?since=yesterday", ["query", "since"]),
        (f"{ROI}/summary?since=2999-01-01", ["query", "since"]),
        (f"{ROI}/summary?since=2026-02-30", ["query", "since"]),
        (f"{ROI}/top-performers?limit=101", ["query", "limit"]),
        (f"{ROI}/underperformers?limit=abc", ["query", "limit"]),
        (f"{ROI}/pattern/has%20space", ["path", "pattern_id"]),
        (f"{ROI}/report/api-good?recent=101", ["query", "recent"]),
        ("/api/pattern-analytics/usage-stats?time_range=2d", ["query", "time_range"]),
        ("/api/pattern-analytics/usage-stats?group_by=month", ["query", "group_by"]),
        ("/api/pattern-analytics/usage-stats?time_range=90d&group_by=hour", ["query", "group_by"]),
    ],
)
def test_bad_parameters_get_422_naming_the_parameter(live: Live, path: str, loc: list[str]) -> None:
    status, body = live.api.get(path)
    assert status == 422, body
    assert [p["loc"] for p in body["detail"]] == [loc]
    assert body["detail"][0]["msg"]


def test_openapi_is_served_as_checked_in_and_docs_answer(live: Live) -> None:
    """/openapi.json is schemas/roi-api.v1.json; /docs serves the interactive page."""
    checked_in = json.loads((ROOT / "schemas" / schemas.ROI_API_V1).read_text(encoding="utf-8"))
    assert _ok(live, "/openapi.json") == checked_in
    status, page = live.api.get("/docs")
    assert status == 200
    assert "swagger" in page.lower()


def test_broker_unavailable_gets_503_and_reads_still_work(live: Live, tmp_path: Path) -> None:
    """With Kafka unreachable, POST answers 503 within the publish timeout and says so; the
    read endpoints keep answering from PostgreSQL, even while more POSTs than the server has
    threads are waiting for Kafka, and each of those answers within a few timeouts rather
    than one timeout per request before it."""
    timeout = 2.0
    closed = f"127.0.0.1:{free_port()}"
    api = ApiProcess(
        live.stream.env(
            ROI_KAFKA_BOOTSTRAP_SERVERS=closed, ROI_API_PUBLISH_TIMEOUT_SECONDS=str(timeout)
        ),
        tmp_path / "api-no-kafka.log",
    )
    body = json_codec.dumps(live.documents[0]).encode()
    try:
        api.wait_up("/readyz")
        status, answer = api.post(f"{ROI}/executions", body)
        assert status == 503, answer
        assert "Kafka" in answer["detail"]
        assert api.get(f"{ROI}/summary")[0] == 200

        answers: list[tuple[int, float]] = []

        def post() -> None:
            started = time.monotonic()
            status = api.post(f"{ROI}/executions", body)[0]
            answers.append((status, time.monotonic() - started))

        storm = [threading.Thread(target=post) for _ in range(48)]  # anyio has 40 threads
        for thread in storm:
            thread.start()
        # The reads are checked again and again for as long as the storm lasts; the rounds
        # that ran before any POST was answered ran with all 48 waiting for Kafka.
        rounds_while_all_wait = 0
        deadline = time.monotonic() + 120
        while any(thread.is_alive() for thread in storm):
            assert time.monotonic() < deadline, "the POSTs never answered"
            none_answered = not answers
            for path in ("/healthz", "/readyz", f"{ROI}/summary"):
                started = time.monotonic()
                assert api.get(path)[0] == 200, path
                assert time.monotonic() - started < timeout / 2, path
            rounds_while_all_wait += none_answered and not answers
            storm[-1].join(timeout=0.1)  # paces the rounds
        assert rounds_while_all_wait >= 2
        assert sorted({status for status, _ in answers}) == [503]
        assert len(answers) == len(storm)
        assert max(seconds for _, seconds in answers) < 3 * timeout + 2
    finally:
        api.close()


def test_database_unavailable_gets_503_not_500(live: Live, tmp_path: Path) -> None:
    """With PostgreSQL unreachable, reads and /readyz answer 503 with a JSON reason; /healthz
    still answers 200 (the process is fine)."""
    url = f"postgresql://roi:roi@127.0.0.1:{free_port()}/roi"
    api = ApiProcess(live.stream.env(ROI_DATABASE_URL=url), tmp_path / "api-no-db.log")
    try:
        api.wait_up("/healthz")
        for path in (f"{ROI}/summary", f"{ROI}/report/api-good", "/readyz"):
            status, body = api.get(path)
            assert status == 503, (path, body)
            assert "PostgreSQL" in body["detail"]
    finally:
        api.close()


# --------------------------------------------------------------------------- in-process


def _settings(**overrides: Any) -> Settings:
    return Settings.model_construct(
        database_url=SecretStr("postgresql://127.0.0.1:1/unused"),
        api_write_tokens=SecretStr(WRITE_TOKEN),
        **overrides,
    )


def _event_body(index: int) -> bytes:
    return json_codec.dumps(
        {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=index + 1, version=4)),
            "pattern_id": "in-process",
            "executed_at": datetime.now(UTC).isoformat(),
            "success": True,
            "execution_time_seconds": 1,
            "estimated_time_seconds": 2,
            "actual_cost": "0.10",
            "estimated_cost": "1.00",
        }
    ).encode()


class _BlockingPublisher(Publisher):
    """Publishes nothing: each call counts itself and waits until `release` is set."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.release = threading.Event()
        self.inside = 0
        self.most_inside = 0
        self._count = threading.Lock()

    def publish(self, events: Any) -> None:
        with self._count:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            self.release.wait(timeout=30)
        finally:
            with self._count:
                self.inside -= 1

    def close(self) -> None:
        pass


def test_posts_waiting_for_kafka_take_a_bounded_number_of_threads() -> None:
    """At most INGEST_CONCURRENCY POSTs wait for Kafka at once; the others get 503 after the
    publish timeout instead of taking every worker thread, and /healthz answers meanwhile."""
    settings = _settings(api_publish_timeout_seconds=0.5)
    publisher = _BlockingPublisher(settings)
    app = api_app.create_app(settings, publisher=publisher)
    statuses: list[int] = []
    posts = ingestion.INGEST_CONCURRENCY + 40  # more POSTs than anyio has threads

    async def post(index: int) -> None:
        statuses.append(
            (await asgi_request(app, "POST", f"{ROI}/executions", _event_body(index)))[0]
        )

    async def scenario() -> None:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                for index in range(posts):
                    group.start_soon(post, index)
                await anyio.sleep(0.2)
                assert (await asgi_request(app, "GET", "/healthz"))[0] == 200
                await anyio.sleep(0.6)  # past the publish timeout: the others were refused
                publisher.release.set()

    try:
        anyio.run(scenario)
    finally:
        publisher.release.set()
    assert publisher.most_inside == ingestion.INGEST_CONCURRENCY
    assert Counter(statuses) == {202: ingestion.INGEST_CONCURRENCY, 503: 40}


def test_post_bodies_are_parsed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing and validating up to 16 MiB of events runs in a worker thread, so the event loop
    keeps answering other requests meanwhile."""
    parsed_on: list[int] = []
    parse = ingest.parse_events

    def recording(body: bytes, idempotency_key: str | None) -> list[ExecutionEvent]:
        parsed_on.append(threading.get_ident())
        return parse(body, idempotency_key)

    monkeypatch.setattr(ingestion, "parse_events", recording)
    settings = _settings()
    publisher = _BlockingPublisher(settings)
    publisher.release.set()
    app = api_app.create_app(settings, publisher=publisher)

    async def scenario() -> tuple[int, int]:
        status, _ = await asgi_request(app, "POST", f"{ROI}/executions", _event_body(0))
        return status, threading.get_ident()

    status, loop_thread = anyio.run(scenario)
    assert status == 202
    assert parsed_on
    assert loop_thread not in parsed_on


def test_requests_waiting_for_a_failed_kafka_connection_share_its_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With Kafka down, requests that queued behind one connection attempt get its error when
    it fails instead of each trying again in turn; a later request tries again."""
    attempts: list[float] = []

    class Unreachable:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            attempts.append(time.monotonic())
            time.sleep(0.3)
            raise BrokerUnavailableError("cannot reach Kafka at nowhere:1")

    monkeypatch.setattr(backends, "ExecutionEventProducer", Unreachable)
    publisher = Publisher(_settings(api_publish_timeout_seconds=0.3))
    start = threading.Barrier(12)
    failures: list[str] = []

    def publish() -> None:
        start.wait()
        try:
            publisher.publish([])
        except BrokerUnavailableError as exc:
            failures.append(str(exc))

    began = time.monotonic()
    threads = [threading.Thread(target=publish) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == ["cannot reach Kafka at nowhere:1"] * 12
    assert len(attempts) == 1
    assert time.monotonic() - began < 2.0
    with pytest.raises(BrokerUnavailableError):
        publisher.publish([])
    assert len(attempts) == 2


def test_the_cache_keeps_nothing_for_keys_whose_computation_fails() -> None:
    """A computation that raises stores nothing and leaves no per-key lock behind, so keys
    that never compute (a database down, crafted parameters) cannot grow memory."""
    cache: TtlCache[int, int] = TtlCache(60)

    def fail() -> int:
        raise ValueError("no")

    for key in range(1000):
        with pytest.raises(ValueError, match="no"):
            cache.get(key, fail)
    assert cache._locks == {}  # the memory this pins down
    assert cache._entries == {}
    assert cache.get(1, lambda: 7) == 7
    assert cache.get(1, fail) == 7  # fresh: served, not recomputed
