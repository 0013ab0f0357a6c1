"""Seed 000's clients against the real API, Kafka, worker and PostgreSQL: its PatternExecution
body POSTed twice with one Idempotency-Key is stored once (the retry a clean duplicate, no dead
letter), and its track_pattern_execution call is stored exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from kafka import KafkaAdminClient

from tests.api_harness import ApiProcess
from tests.fixtures.services import Services, create_topic, delete_topics, new_database
from tests.worker_harness import Stream, WorkerProcess, end_offsets, query, wait_caught_up
from worker import producer
from worker.api.ingest import seed_event_id
from worker.contract import json_codec
from worker.db.migrate import load_migrations, migrate
from worker.producer import track_pattern_execution

EXECUTIONS = "/api/roi-tracking/executions"


@dataclass(frozen=True)
class Live:
    stream: Stream
    api: ApiProcess


@pytest.fixture(scope="module")
def live(
    services: Services, kafka_admin: KafkaAdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """A topic with its dead-letter topic, a migrated database, a worker and the API."""
    logs = tmp_path_factory.mktemp("seed-clients")
    topic = create_topic(kafka_admin, "seed", 1)
    dlq = create_topic(kafka_admin, "seed-dlq", 1)
    with new_database(services, "seed") as url:
        migrate(url, load_migrations())
        stream = Stream(
            services.kafka_bootstrap_servers, topic, dlq, f"g-{uuid.uuid4().hex[:8]}", url
        )
        worker = WorkerProcess(stream, logs / "worker.log")
        api = ApiProcess(stream.env(), logs / "api.log")
        try:
            worker.wait_ready()
            api.wait_up("/readyz")
            yield Live(stream, api)
        finally:
            api.close()
            worker.close()
    delete_topics(kafka_admin, topic, dlq)


def test_a_seed_body_retried_with_one_idempotency_key_is_stored_once(live: Live) -> None:
    """Both POSTs answer 202 with the same event_id (derived from the key); the topic holds
    both, the worker stores one execution and dead-letters nothing (a clean duplicate)."""
    executed_at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    body = json_codec.dumps(
        {
            "id": None,
            "pattern_id": "seed-retry",
            "workflow_id": 1842,
            "execution_time_seconds": Decimal("12.5"),
            "estimated_time_seconds": 300,
            "actual_cost": Decimal("0.42"),
            "estimated_cost": Decimal("25.0"),
            "success": True,
            "error_message": None,
            "executed_at": executed_at,
        }
    ).encode()
    expected = str(seed_event_id("seed-retry", "order-7/attempt"))
    answers = [
        live.api.request("POST", EXECUTIONS, body, {"Idempotency-Key": "order-7/attempt"})
        for _ in range(2)
    ]
    for status, answer, _ in answers:
        assert status == 202, answer
        assert answer["event_ids"] == [expected]
    assert sum(end_offsets(live.stream.bootstrap_servers, live.stream.topic).values()) >= 2
    wait_caught_up(live.stream)
    rows = query(
        live.stream.database_url,
        "SELECT event_id::text, workflow_id, actual_cost, execution_time_seconds "
        "FROM pattern_executions WHERE pattern_id = 'seed-retry'",
    )
    assert [tuple(row) for row in rows] == [(expected, "1842", Decimal("0.42"), Decimal("12.5"))]
    assert sum(end_offsets(live.stream.bootstrap_servers, live.stream.dlq_topic).values()) == 0


def test_the_seed_hook_call_is_stored_exactly(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """track_pattern_execution with the seed's positional arguments and a cost per second:
    the stored durations and costs are the exact decimals, executed_at is end_time."""
    monkeypatch.setenv("ROI_KAFKA_BOOTSTRAP_SERVERS", live.stream.bootstrap_servers)
    monkeypatch.setenv("ROI_TOPIC", live.stream.topic)
    monkeypatch.setattr(producer, "_default", None)
    end = datetime.now(UTC).replace(microsecond=250000).timestamp()
    event_id = track_pattern_execution(
        "seed-hook", 77, end - 60.5, end, 900.0, True, None, cost_per_second="0.0035"
    )
    assert producer._default is not None
    producer._default.close()
    wait_caught_up(live.stream)
    rows = query(
        live.stream.database_url,
        "SELECT workflow_id, execution_time_seconds, actual_cost, estimated_cost, executed_at "
        "FROM pattern_executions WHERE event_id = %s",
        (event_id,),
    )
    assert [tuple(row) for row in rows] == [
        (
            "77",
            Decimal("60.5"),
            Decimal("0.21175"),
            Decimal("3.15"),
            datetime.fromtimestamp(end, UTC),
        )
    ]
