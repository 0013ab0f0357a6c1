"""docs/metrics.md lists exactly the roi_* metrics a running worker serves."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.events import sample_events
from tests.worker_harness import Stream, WorkerProcess, produce, start, wait_caught_up

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
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in sample_events(50)])
    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)
    status, text = worker.get("/metrics")
    assert status == 200
    assert served(text) == documented()
