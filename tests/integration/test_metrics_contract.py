"""docs/metrics.md lists exactly the roi_* metrics a running worker serves."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.events import sample_events
from tests.worker_harness import Stream, WorkerProcess, produce, query, start, wait_caught_up
from worker.analytics import totals_from_row
from worker.roi import rate
from worker.summaries import SUMS

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
    """Every roi_* family served is documented with its type, and every documented one served."""
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in sample_events(50)])
    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)
    status, text = worker.get("/metrics")
    assert status == 200
    assert served(text) == documented()


def test_each_pattern_has_one_current_rating_the_report_agrees_with(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """roi_pattern_effectiveness is 1 for exactly the rating worker.roi gives the summary row."""
    samples = sample_events(60, patterns=3)
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples])
    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)
    _, text = worker.get("/metrics")
    current: dict[str, list[str]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "roi_pattern_effectiveness":
            for sample in family.samples:
                assert sample.value in (0.0, 1.0)
                if sample.value == 1.0:
                    current.setdefault(sample.labels["pattern_id"], []).append(
                        sample.labels["rating"]
                    )
    rows = query(
        stream.database_url, f"SELECT pattern_id, {', '.join(SUMS)} FROM pattern_roi_summary"
    )
    expected = {row[0]: [rate(totals_from_row(row[1:])).value] for row in rows}
    assert len(expected) == 3
    assert current == expected
