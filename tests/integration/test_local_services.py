"""deploy/local/services.sh itself: starts both services, is idempotent, stops, fails clearly.

Runs a second, private pair of services on free ports with its own state directory, so the
services the rest of the suite uses are never touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaConsumer

from tests.helpers import wait_until
from tests.integration.events import sample_events
from tests.integration.test_pipeline import assert_stored_exactly
from tests.worker_harness import Stream, WorkerProcess, free_ports, produce, wait_caught_up
from worker.db.migrate import load_migrations, migrate

pytestmark = pytest.mark.local_services

SCRIPT = Path(__file__).parents[2] / "deploy" / "local" / "services.sh"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Private:
    env: dict[str, str]
    env_file: Path
    kafka_port: int
    pg_port: int

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    # Outside /tmp/pytest-of-*, which is private to this user: the postgres user must reach it.
    state = Path("/var/tmp") / f"roi-worker-services-test-{uuid.uuid4().hex[:8]}"  # noqa: S108
    env_file = tmp_path_factory.mktemp("services") / "services.env"
    kafka_port, controller_port, pg_port = free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
    env.update(
        ROI_SERVICES_DIR=str(state),
        ROI_SERVICES_ENV_FILE=str(env_file),
        ROI_KAFKA_PORT=str(kafka_port),
        ROI_KAFKA_CONTROLLER_PORT=str(controller_port),
        ROI_PG_PORT=str(pg_port),
    )
    private = Private(env, env_file, kafka_port, pg_port)
    yield private
    private.run("stop")
    shutil.rmtree(state, ignore_errors=True)


def read_env(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_start_is_idempotent_and_stop_stops_both(private: Private) -> None:
    """start brings up both and writes the env file; a second start is a no-op; stop stops both."""
    result = private.run("start")
    assert result.returncode == 0, result.stdout + result.stderr
    env = read_env(private.env_file)
    assert env["ROI_KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{private.kafka_port}"
    with psycopg.connect(env["ROI_DATABASE_URL"], connect_timeout=10) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("roi",)
    consumer = KafkaConsumer(bootstrap_servers=env["ROI_KAFKA_BOOTSTRAP_SERVERS"])
    try:
        assert consumer.topics() is not None
    finally:
        consumer.close()

    pid_file = Path(private.env["ROI_SERVICES_DIR"]) / f"kafka-{private.kafka_port}" / "kafka.pid"
    broker_pid = pid_file.read_text()
    again = private.run("start")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "kafka: already running" in again.stdout
    assert "postgresql: already running" in again.stdout
    assert pid_file.read_text() == broker_pid
    assert private.run("status").returncode == 0

    stopped = private.run("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not listening(private.kafka_port)
    assert not listening(private.pg_port)
    status = private.run("status")
    assert status.returncode == 1
    assert "kafka: not running" in status.stdout


def test_a_taken_port_fails_with_one_line_naming_it(private: Private) -> None:
    """When another process holds the broker's port, start fails naming the setting to change."""
    private.run("stop")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", private.kafka_port))
        squatter.listen()
        result = private.run("start")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"services: FAILED: kafka: port {private.kafka_port} is taken by another process; "
        "set ROI_KAFKA_PORT"
    )


def test_a_worker_rides_out_a_restart_of_both_services(private: Private, tmp_path: Path) -> None:
    """Kafka and PostgreSQL really stopped under a running worker and started again: it
    reconnects to both and resumes, with every event stored exactly once."""
    started = private.run("start")
    assert started.returncode == 0, started.stdout + started.stderr
    env = read_env(private.env_file)
    migrate(env["ROI_DATABASE_URL"], load_migrations())
    stream = Stream(
        env["ROI_KAFKA_BOOTSTRAP_SERVERS"],
        "restart-events",
        "restart-events.dlq",
        "restart",
        env["ROI_DATABASE_URL"],
    )
    samples = sample_events(1000)
    worker = WorkerProcess(stream, tmp_path / "worker.log", ROI_CREATE_TOPICS="true")
    try:
        worker.wait_ready()
        produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples[:500]])
        wait_caught_up(stream)

        stopped = private.run("stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        wait_until(lambda: worker.get("/readyz")[0] == 503, timeout=60, what="not ready")
        again = private.run("start")
        assert again.returncode == 0, again.stdout + again.stderr

        produce(stream.bootstrap_servers, stream.topic, [s.message for s in samples[500:]])
        wait_caught_up(stream, timeout=180)
        assert worker.process.poll() is None  # the same process, never restarted
        assert_stored_exactly(stream, samples)
        assert worker.stop() == 0
    finally:
        worker.close()
