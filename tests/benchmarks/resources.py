"""What a benchmark run creates on the services, and removes again: topics, databases
(created and migrated), and the processes it starts."""

from __future__ import annotations

import contextlib
import sys
import uuid
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import psycopg
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from psycopg import sql

from tests.benchmarks.processes import Child
from tests.benchmarks.report import REPO
from tests.helpers import drop_database, wait_until
from worker.db.migrate import load_migrations, migrate

LOG_DIR: Final = REPO / ".local" / "bench"  # each started process logs to <scenario>.log here
DROP_TIMEOUT_SECONDS: Final = 60.0


@dataclass
class Services:
    """The broker and the server, and what the run created on them (removed by `close`)."""

    bootstrap_servers: str
    database_url: str
    topics: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id="roi-bench")

    def topic(self, prefix: str, partitions: int) -> str:
        name = f"roi-bench-{prefix}-{uuid.uuid4().hex[:8]}"
        admin = self.admin()
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
            self.topics.append(name)
            try:
                wait_until(lambda: name in admin.list_topics(), timeout=30, what=f"topic {name}")
            except AssertionError as exc:  # run_bench reports TimeoutErrors in one line
                raise TimeoutError(str(exc)) from None
        finally:
            admin.close()
        return name

    def dead_letter_topic(self, topic: str) -> None:
        """`<topic>.dlq`: the worker refuses to start without its dead-letter topic."""
        admin = self.admin()
        try:
            if f"{topic}.dlq" not in admin.list_topics():
                admin.create_topics([NewTopic(f"{topic}.dlq", 1, 1)])
                self.topics.append(f"{topic}.dlq")
        finally:
            admin.close()

    def database(self, prefix: str) -> str:
        """A new, migrated database; returns its URL."""
        name = f"roi_bench_{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        url = urlunsplit(urlsplit(self.database_url)._replace(path=f"/{name}"))
        migrate(url, load_migrations())
        return url

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(argv, env, LOG_DIR / f"{name}.log")
        self.children.append(child)
        return child

    def close(self) -> None:
        for child in self.children:
            child.kill()
        with contextlib.suppress(Exception):
            admin = self.admin()
            with contextlib.suppress(Exception):
                admin.delete_topics(self.topics)
            admin.close()
        for name in self.databases:
            _drop_database(self.database_url, name)


def _drop_database(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            drop_database(conn, name, timeout=DROP_TIMEOUT_SECONDS)
        except AssertionError:
            print(f"run_bench: could not drop database {name}", file=sys.stderr)
