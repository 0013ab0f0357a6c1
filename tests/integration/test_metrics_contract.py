"""docs/metrics.md lists exactly the roi_* metrics a running worker serves."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Services, create_topic, delete_topics, new_database
from tests.integration.events import sample_events
from tests.worker_harness import Stream, WorkerProcess, produce, wait_caught_up
from worker.migrate import load_migrations, migrate

METRICS_DOC = Path(__file__).parents[2] / "docs" / "metrics.md"


def documented() -> dict[str, str]:
    """Metric name -> type, from the tables of docs/metrics.md."""
    rows = re.findall(r"^\| `(roi_[a-z_]+)` \| (\w+) \|", METRICS_DOC.read_text(), re.MULTILINE)
    return dict(rows)


def served(text: str) -> dict[str, str]:
    names = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("roi_"):
            suffix = "_total" if family.type == "counter" else ""
            names[family.name + suffix] = family.type
    return names


def test_the_metrics_doc_matches_what_the_worker_serves(
    services: Services, kafka_admin: KafkaAdminClient, tmp_path: Path
) -> None:
    topic = create_topic(kafka_admin, "metrics")
    dlq = create_topic(kafka_admin, "metrics-dlq", 1)
    try:
        with new_database(services, "metrics") as url:
            migrate(url, load_migrations())
            stream = Stream(
                services.kafka_bootstrap_servers, topic, dlq, f"g-{uuid.uuid4().hex[:8]}", url
            )
            produce(stream.bootstrap_servers, topic, [s.message for s in sample_events(50)])
            worker = WorkerProcess(stream, tmp_path / "worker.log")
            try:
                wait_caught_up(stream)
                status, text = worker.get("/metrics")
                assert status == 200
                assert worker.stop() == 0
            finally:
                worker.close()
    finally:
        delete_topics(kafka_admin, topic, dlq)
    assert served(text) == documented()
