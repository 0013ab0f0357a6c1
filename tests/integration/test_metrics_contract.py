"""docs/metrics.md lists exactly the roi_* metrics a running worker serves, and in its API section
exactly those a running `roi-worker api` serves."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from tests.api_harness import ApiProcess
from tests.fixtures.services import Services, new_database
from tests.integration.events import sample_events
from tests.worker_harness import Stream, WorkerProcess, produce, query, start, wait_caught_up
from worker.db.migrate import load_migrations, migrate
from worker.metrics import PatternCollector
from worker.roi.analytics import totals_from_row
from worker.roi.methodology import rate
from worker.roi.summaries import SUMS

METRICS_DOC = Path(__file__).parents[2] / "docs" / "metrics.md"


API_SECTION = "The API process (per replica)"


def documented(*, api: bool = False) -> dict[str, str]:
    """Metric name -> type, from the tables of docs/metrics.md: those of its API section, or
    those of every other section (the worker's)."""
    sections = re.split(r"^## ", METRICS_DOC.read_text(), flags=re.MULTILINE)
    text = "".join(section for section in sections if section.startswith(API_SECTION) == api)
    rows = re.findall(r"^\| `(roi_[a-z_]+)` \| (\w+) \|", text, re.MULTILINE)
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


def test_the_api_serves_its_documented_metrics_and_counts_a_request(
    stream: Stream, tmp_path: Path
) -> None:
    """`roi-worker api`'s /metrics serves exactly the API section's families, and a request
    made shows there under its route template and status, with its latency observed."""
    api = ApiProcess(stream.env(), tmp_path / "api.log")
    try:
        api.wait_up("/readyz")
        status, _ = api.get("/api/roi-tracking/report/no-such-pattern")
        assert status == 404
        status, text, headers = api.request("GET", "/metrics")
    finally:
        api.close()
    assert status == 200
    assert {name.lower(): value for name, value in headers.items()}["content-type"].startswith(
        "text/plain"
    )
    assert served(text) == documented(api=True)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    route = "/api/roi-tracking/report/{pattern_id}"
    counted = (("method", "GET"), ("route", route), ("status", "404"))
    assert samples[("roi_api_requests_total", counted)] == 1
    timed = (("method", "GET"), ("route", route))
    assert samples[("roi_api_request_duration_seconds_count", timed)] == 1
    assert samples[("roi_api_db_pool_connections", ())] >= 1  # /readyz used one


def test_each_pattern_has_one_current_rating_the_report_agrees_with(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """roi_pattern_effectiveness is 1 for exactly the rating the methodology gives the row."""
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


def test_window_figures_count_the_utc_days_of_each_window(services: Services) -> None:
    """roi_pattern_window_* of 24h count today and yesterday (UTC days), those of 7d today and
    the 6 days before, as `roi-worker report --since 2d` and `--since 7d` do: from
    pattern_roi_daily, nothing dated later than today; a window without executions has no
    success ratio."""
    today = datetime.now(UTC).date()
    # pattern_id -> {days before today: (executions, successes)}
    daily = {
        "steady": {-1: (7, 0), 0: (10, 9), 1: (20, 18), 2: (30, 30), 6: (40, 20), 7: (900, 0)},
        "quiet": {3: (10, 5)},
    }
    with new_database(services, "window_metrics") as url:
        migrate(url, load_migrations())
        with psycopg.connect(url) as conn, conn.transaction():
            for pattern_id, days in daily.items():
                total = [sum(n for n, _ in days.values()), sum(s for _, s in days.values())]
                conn.execute(
                    "INSERT INTO pattern_roi_summary (pattern_id, total_executions,"
                    " successful_executions) VALUES (%s, %s, %s)",
                    (pattern_id, *total),
                )
                for before, (executions, successes) in days.items():
                    conn.execute(
                        "INSERT INTO pattern_roi_daily (pattern_id, day, total_executions,"
                        " successful_executions) VALUES (%s, %s, %s, %s)",
                        (pattern_id, today - timedelta(days=before), executions, successes),
                    )
        registry = CollectorRegistry()
        errors = Counter("errors", "database errors", registry=registry)
        collector = PatternCollector(url, 10, errors, 10)
        registry.register(collector)
        try:

            def value(name: str, pattern_id: str, window: str) -> float | None:
                labels = {"pattern_id": pattern_id, "window": window}
                return registry.get_sample_value(f"roi_pattern_window_{name}", labels)

            assert value("executions", "steady", "24h") == 30
            assert value("successful_executions", "steady", "24h") == 27
            assert value("success_ratio", "steady", "24h") == 0.9
            assert value("executions", "steady", "7d") == 100
            assert value("successful_executions", "steady", "7d") == 77
            assert value("success_ratio", "steady", "7d") == 0.77
            assert value("executions", "quiet", "24h") == 0
            assert value("success_ratio", "quiet", "24h") is None
            assert value("executions", "quiet", "7d") == 10
            assert value("success_ratio", "quiet", "7d") == 0.5
            assert registry.get_sample_value("errors_total") == 0
        finally:
            collector.close()
