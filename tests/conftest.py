"""Fixtures: the real Kafka broker and PostgreSQL server, fresh per test module.

Where the services come from, first match wins:
1. ROI_KAFKA_BOOTSTRAP_SERVERS and ROI_DATABASE_URL (what `make test` sets from `make services`);
2. testcontainers, when a Docker engine answers;
3. otherwise the run fails, saying how to start them. A missing service never skips a test.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from psycopg import sql

from tests.helpers import drop_database, wait_until

settings.register_profile(
    "deterministic",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

INTEGRATION_DIR = Path(__file__).parent / "integration"
SERVICE_TIMEOUT = 60.0  # seconds a reachable service may take to answer

HOW_TO_START = (
    "Integration tests need Kafka and PostgreSQL. Run `make test` (it starts them), or start "
    "them with `make services` and load `.local/services.env` (set -a; . .local/services.env; "
    "set +a), or point ROI_KAFKA_BOOTSTRAP_SERVERS and ROI_DATABASE_URL at your own."
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Services:
    kafka_bootstrap_servers: str
    database_url: str


def _docker_answers() -> bool:
    # Without an engine docker-py leaks the socket of its failed version probe, which fails
    # the run with a ResourceWarning: most machines without Docker have no socket to probe.
    if "DOCKER_HOST" not in os.environ and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
    except Exception:
        return False
    try:
        client.ping()
    except Exception:
        return False
    finally:
        client.close()  # an unclosed client's socket fails the run with a ResourceWarning
    return True


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """The broker and server every integration test uses (see the module docstring)."""
    kafka = os.environ.get("ROI_KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("ROI_DATABASE_URL")
    if kafka and database:
        yield Services(kafka, database)
        return
    if kafka or database:
        pytest.fail(f"only one of the two services is configured. {HOW_TO_START}", pytrace=False)
    if not _docker_answers():
        pytest.fail(f"no services configured and no Docker engine. {HOW_TO_START}", pytrace=False)
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    with (
        KafkaContainer("confluentinc/cp-kafka:7.8.0").with_kraft() as kafka_container,
        PostgresContainer("postgres:15-alpine", driver=None) as pg_container,
    ):
        yield Services(kafka_container.get_bootstrap_server(), pg_container.get_connection_url())


@pytest.fixture(scope="session")
def kafka_admin(services: Services) -> Iterator[KafkaAdminClient]:
    def connect() -> KafkaAdminClient | None:
        try:
            return KafkaAdminClient(
                bootstrap_servers=services.kafka_bootstrap_servers, client_id="roi-worker-tests"
            )
        except Exception:
            return None

    admin = wait_until(
        connect,
        timeout=SERVICE_TIMEOUT,
        interval=0.5,
        what=f"Kafka at {services.kafka_bootstrap_servers}. {HOW_TO_START}",
    )
    yield admin
    admin.close()


def _safe_name(request: pytest.FixtureRequest) -> str:
    module = request.module.__name__.rsplit(".", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "_", module.lower())[:30]


def create_topic(admin: KafkaAdminClient, prefix: str, partitions: int = 3) -> str:
    """A new topic with a unique name; the caller deletes it (see delete_topic)."""
    name = f"roi-test-{prefix}-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    wait_until(lambda: name in admin.list_topics(), timeout=SERVICE_TIMEOUT, what=f"topic {name}")
    return name


def delete_topics(admin: KafkaAdminClient, *names: str) -> None:
    existing = set(admin.list_topics())
    with contextlib.suppress(Exception):
        admin.delete_topics([name for name in names if name in existing])


@pytest.fixture(scope="module")
def topic(kafka_admin: KafkaAdminClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new three-partition topic for this test module, deleted afterwards."""
    name = create_topic(kafka_admin, _safe_name(request))
    yield name
    delete_topics(kafka_admin, name)


def _admin_connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    def connect() -> psycopg.Connection[tuple[object, ...]] | None:
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            return None

    return wait_until(
        connect, timeout=SERVICE_TIMEOUT, interval=0.5, what=f"PostgreSQL. {HOW_TO_START}"
    )


@contextlib.contextmanager
def new_database(services: Services, prefix: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards."""
    name = f"roi_test_{prefix}_{uuid.uuid4().hex[:8]}"
    with _admin_connect(services.database_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(services.database_url, name)
    finally:
        with _admin_connect(services.database_url) as conn:
            drop_database(conn, name, timeout=SERVICE_TIMEOUT)


@pytest.fixture(scope="module")
def database_url(services: Services, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty database for this test module, dropped afterwards."""
    with new_database(services, _safe_name(request)) as url:
        yield url


def with_database(url: str, dbname: str) -> str:
    """`url` naming another database; stays a URL, which is what ROI_DATABASE_URL must be."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))
