"""schemathesis against the live API over its own OpenAPI schema, with every check: generated
requests (valid, boundary and invalid ones) never get a 500, every answer matches the schema (a
declared status code, content type, headers and body), a request valid by the schema is never
refused and an invalid one never accepted, and a write without the token is refused. The rules
on the clock, which the schema says in words only, are kept by tests/schemathesis_hooks.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaAdminClient

from tests.api_harness import ApiProcess
from tests.fixtures.services import Services, create_topic, delete_topics, new_database
from tests.worker_harness import Stream
from worker.db.migrate import load_migrations, migrate
from worker.roi.summaries import rebuild

TOKEN = "fuzz-write-token"  # the one write token of the API under test (ROI_API_WRITE_TOKENS)
# Keeps valid cases within the rules on the clock, which the schema says in words only.
HOOKS = Path(__file__).parents[1] / "schemathesis_hooks.py"
FUZZ_TIMEOUT = 170.0  # seconds, a bound for the whole run: it takes about 15 s on two cores

# A few executions of three patterns over the last 20 days, so that the generated reads find
# data (a rated pattern, a trend, percentiles) as well as unknown patterns.
_FILL = """
INSERT INTO pattern_executions (
    event_id, schema_version, pattern_id, executed_at, success, execution_time_seconds,
    estimated_time_seconds, actual_cost, estimated_cost, source_topic, source_partition,
    source_offset)
SELECT md5(i::text)::uuid, 1, (ARRAY['a', 'team/b', 'c-1'])[1 + i % 3],
       now() - make_interval(hours => i), i % 7 <> 0, i % 50, 600, (i % 90) / 100.0,
       5 + (i % 30), 'fuzz', 0, i
FROM generate_series(1, 480) AS i
"""


@pytest.fixture(scope="module")
def api(
    services: Services, kafka_admin: KafkaAdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    topic = create_topic(kafka_admin, "api-fuzz", 1)
    with new_database(services, "api_fuzz") as url:
        migrate(url, load_migrations())
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_FILL)
            rebuild(conn)
        stream = Stream(services.kafka_bootstrap_servers, topic, f"{topic}.dlq", "fuzz", url)
        env = {**stream.env(), "ROI_API_WRITE_TOKENS": TOKEN}
        process = ApiProcess(env, tmp_path_factory.mktemp("fuzz") / "api.log")
        try:
            process.wait_up("/readyz")
            yield process
        finally:
            process.close()
    delete_topics(kafka_admin, topic)


def test_generated_requests_get_no_server_error_and_match_the_schema(
    api: ApiProcess, tmp_path: Path
) -> None:
    """Every operation, every phase, every check, deterministic generation: no check fails."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{api.base_url}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "40",
            "--seed",
            "20261122",
            "--generation-deterministic",
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--no-color",
            "--report-dir",
            str(tmp_path),
        ],
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT,
        check=False,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{output[-8000:]}\n--- api log\n{api.log()[-3000:]}"
    assert " 500" not in api.log()
    assert "14 selected / 14 total" in output, output  # every operation was tested
    assert "No issues found" in output, output
