"""Fixtures of the pipeline tests: a fresh stream per test, and workers stopped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from tests.cli_runner import RoiWorker, in_process_cli
from tests.conftest import Services, create_topic, delete_topics, new_database
from tests.worker_harness import Stream, WorkerProcess
from worker.db.migrate import load_migrations, migrate


@pytest.fixture
def stream(
    services: Services, kafka_admin: KafkaAdminClient, request: pytest.FixtureRequest
) -> Iterator[Stream]:
    """A fresh topic (3 partitions), dead-letter topic, group and migrated database."""
    partitions = getattr(request, "param", 3)
    name = create_topic(kafka_admin, "stream", partitions)
    dlq = create_topic(kafka_admin, "stream-dlq", 1)
    with new_database(services, "stream") as url:
        migrate(url, load_migrations())
        yield Stream(services.kafka_bootstrap_servers, name, dlq, f"g-{uuid.uuid4().hex[:8]}", url)
    delete_topics(kafka_admin, name, dlq)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Started workers, stopped at the end of the test whatever happened."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.close()


@pytest.fixture
def roi_worker(
    services: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> RoiWorker:
    """Runs `roi-worker ARGS` in-process against a database; only ROI_DATABASE_URL is set.

    Depends on `services`, which reads the ROI_* variables this fixture then removes.
    """
    del services
    return in_process_cli(monkeypatch, capsys)
