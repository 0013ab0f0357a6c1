"""`roi-worker demo` end to end: its own worker, the sample stream, the table, a clean exit."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from jsonschema import Draft202012Validator
from kafka import KafkaAdminClient

from tests.fixtures.services import Services, delete_topics
from tests.helpers import wait_until
from tests.worker_harness import free_ports
from worker import schemas
from worker.demo.stream import (
    EVENTS,
    PROFILES,
    RATING_CHANGE,
    RATING_CHANGE_FAILURES,
    RATING_CHANGE_SUCCESSES,
    SEED,
    plan_stream,
)

ROOT = Path(__file__).parents[2]

DEMO_TIMEOUT = 240.0  # seconds: start-up, 3,064 events in three phases, on a slow machine
PATTERNS = sorted(p.pattern_id for p in (*PROFILES, RATING_CHANGE))
ALL_EVENTS = EVENTS + RATING_CHANGE_SUCCESSES + RATING_CHANGE_FAILURES


@pytest.fixture(scope="module")
def demo_topic(kafka_admin: KafkaAdminClient) -> Iterator[str]:
    """A topic name of its own; the demo's worker creates it and its dead-letter topic."""
    name = f"roi-test-demo-{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(kafka_admin, name, f"{name}.dlq", f"{name}.ratings")


def _run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _run_demo_and_read_the_api(
    env: dict[str, str], cwd: Path, api_port: int
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Runs `demo --seconds 600` until it says the worker and the API keep running, GETs the
    API's summary, then ends the demo with SIGTERM as Ctrl-C would (exit 0)."""
    # One reader per pipe, and nothing else reads them: communicate() would race the readers.
    lines: list[str] = []
    errors: list[str] = []
    summary: dict[str, Any] = {}
    with subprocess.Popen(
        [sys.executable, "-m", "worker", "demo", "--seconds", "600"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        readers = [
            threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, ""))),  # type: ignore[union-attr]
            threading.Thread(target=lambda: errors.append(process.stderr.read())),  # type: ignore[union-attr]
        ]
        for reader in readers:
            reader.start()
        try:
            wait_until(
                lambda: any("keep running" in line for line in lines) or process.poll() is not None,
                timeout=DEMO_TIMEOUT,
                what="the demo to print its table and keep running",
            )
            if process.poll() is None:
                url = f"http://127.0.0.1:{api_port}/api/roi-tracking/summary?limit=1000"
                with urllib.request.urlopen(url, timeout=30) as response:
                    summary = json.loads(response.read())
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/", timeout=30) as page:
                    summary["page"] = page.read().decode()
                process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            for reader in readers:  # before the pipes close, at the end of `with`
                reader.join(timeout=10)
    result = subprocess.CompletedProcess(
        process.args, process.returncode, "".join(lines), "".join(errors)
    )
    return result, summary


def test_demo_stores_the_sample_stream_and_prints_every_pattern(
    services: Services, database_url: str, demo_topic: str, tmp_path: Path
) -> None:
    """The demo prints every pattern, the metrics URL and the API's URL, its API lists the demo's
    patterns while it runs, and it exits 0 on SIGTERM; the database
    holds each published event once, duplicates included, invalid and conflicting ones not."""
    port, api_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROI_") and k != "DEMO_SECONDS"}
    env |= {
        "ROI_KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap_servers,
        "ROI_DATABASE_URL": database_url,
        "ROI_TOPIC": demo_topic,
        "ROI_RATINGS_TOPIC": f"{demo_topic}.ratings",
        "ROI_GROUP_ID": f"roi-test-demo-{uuid.uuid4().hex[:8]}",
        "ROI_METRICS_PORT": str(port),
        "ROI_API_PORT": str(api_port),
    }
    migrated = _run(["migrate"], env, tmp_path, timeout=60)
    assert migrated.returncode == 0, migrated.stderr

    # Running until told to stop, as `make demo` does: the API answers meanwhile.
    result, summary = _run_demo_and_read_the_api(env, tmp_path, api_port)

    log = tmp_path / ".local" / "demo-worker.log"
    worker_log = log.read_text(errors="replace") if log.exists() else "(no worker log)"
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n--- worker log\n{worker_log}"
    assert "Traceback" not in result.stderr, result.stderr
    out = result.stdout
    for pattern_id in PATTERNS:
        assert re.search(rf"^{re.escape(pattern_id)}\s+[0-9,]+\s", out, re.MULTILINE), out
    assert f"http://127.0.0.1:{port}/metrics" in out
    assert f"API: http://127.0.0.1:{api_port}/api/roi-tracking/summary (7 patterns)" in out, out
    assert f"Dashboard page: http://127.0.0.1:{api_port}/ " in out, out
    # The API's write token: made for the run, readable by its owner only, never printed.
    token_file = tmp_path / ".local" / "api-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text(encoding="utf-8").strip()
    assert 'curl -H "Authorization: Bearer $(cat .local/api-token)"' in out, out
    api_log = (tmp_path / ".local" / "demo-api.log").read_text(errors="replace")
    for output in (out, result.stderr, worker_log, api_log):
        assert token not in output
    # The page the demo points at shows the same figures (tests/browser/ drives it in Chromium).
    page = summary.pop("page")
    assert f'data-figure="total-executions" data-value="{ALL_EVENTS}"' in page, page[:2000]
    assert sorted(p["pattern_id"] for p in summary["patterns"]) == PATTERNS
    assert sum(p["executions"] for p in summary["patterns"]) == ALL_EVENTS
    planned = Counter(step.kind for step in plan_stream(random.Random(SEED), datetime.now(UTC)))
    dead_lettered = planned["invalid"] + planned["conflict"]
    assert f"dead-letter topic {demo_topic}.dlq received {dead_lettered}." in out, out

    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT count(*), count(DISTINCT event_id), count(DISTINCT pattern_id) "
            "FROM pattern_executions"
        ).fetchone()
        summarised = conn.execute(
            "SELECT sum(total_executions) FROM pattern_roi_summary"
        ).fetchone()
        offsets = conn.execute(
            "SELECT sum(next_offset) FROM consumer_offsets WHERE topic = %s", (demo_topic,)
        ).fetchone()
    assert planned["event"] == EVENTS
    assert stored == (ALL_EVENTS, ALL_EVENTS, len(PATTERNS))
    assert summarised == (ALL_EVENTS,)
    # every message processed, none twice
    assert offsets == (sum(planned.values()) + ALL_EVENTS - EVENTS,)

    # The pattern published good runs first, then failed ones: rated excellent, later failed,
    # each transition published once (the demo checks the topic and fails otherwise).
    changes = re.findall(rf"^  {RATING_CHANGE.pattern_id} #(\d+): (.*) -> (\w+)", out, re.M)
    assert [int(sequence) for sequence, _, _ in changes] == list(range(1, len(changes) + 1))
    ratings = [new for _, _, new in changes]  # a phase split over batches may add steps
    assert ratings[-1] == "failed", out
    assert "excellent" in ratings[:-1], out

    # What the issue promises after a demo: the report's layout with the demo's patterns, a JSON
    # document that validates against its published schema, and summaries that verify.
    report = _run(["report", "--summary"], env, tmp_path, timeout=60)
    assert report.returncode == 0, report.stderr
    for heading in ("PATTERN ROI SUMMARY", "TOP PERFORMERS (by ROI)", "OVERALL METRICS"):
        assert f"\n{heading}\n" in report.stdout, report.stdout
    assert f"Total executions: {ALL_EVENTS:,}\n" in report.stdout, report.stdout
    assert "1. Pattern: " in report.stdout
    as_json = _run(["report", "--summary", "--format", "json"], env, tmp_path, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    schema = json.loads((ROOT / "schemas" / schemas.ROI_REPORT_V1).read_text(encoding="utf-8"))
    Draft202012Validator(schema).validate(document)
    assert sorted(p["pattern_id"] for p in document["patterns"]) == PATTERNS
    verified = _run(["verify"], env, tmp_path, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # ... and a full replay of the demo's topic ends by itself, inserting nothing.
    replayed = _run(["replay", "--from-beginning"], env, tmp_path, timeout=120)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    read = sum(planned.values()) + ALL_EVENTS - EVENTS
    assert f"read {read:,} messages, inserted 0 events" in replayed.stdout
    assert "Traceback" not in replayed.stderr
