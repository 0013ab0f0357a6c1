"""Runs `roi-worker run` as a real process and observes it from outside, as operators do.

The worker is a subprocess so that tests can SIGTERM and `kill -9` it; what it did is read
from PostgreSQL, the topics and its /metrics endpoint.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from tests.child_process import LoggedProcess
from tests.helpers import wait_until

START_TIMEOUT = 60.0
PROCESS_TIMEOUT = 120.0  # the longest a test waits for a worker to store a stream


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free right now (held together while chosen, so none repeats)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


@dataclass(frozen=True)
class Stream:
    """Where one test's events flow: a topic, its dead-letter topic, a group and a database."""

    bootstrap_servers: str
    topic: str
    dlq_topic: str
    group_id: str
    database_url: str

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            "ROI_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "ROI_DATABASE_URL": self.database_url,
            "ROI_TOPIC": self.topic,
            "ROI_DLQ_TOPIC": self.dlq_topic,
            "ROI_GROUP_ID": self.group_id,
            "ROI_BATCH_MAX_SECONDS": "0.2",
            "ROI_METRICS_HOST": "127.0.0.1",
            "ROI_LOG_LEVEL": "INFO",
            # A killed worker's partitions move on after this, not after the default 45 s.
            "ROI_KAFKA_SESSION_TIMEOUT_MS": "6000",
            **overrides,
        }


class WorkerProcess(LoggedProcess):
    """One `roi-worker run` process with its log in `log_path`."""

    def __init__(self, stream: Stream, log_path: Path, **env: str) -> None:
        self.port = free_port()
        environment = {**os.environ, **stream.env(ROI_METRICS_PORT=str(self.port), **env)}
        super().__init__(
            "the worker", [sys.executable, "-m", "worker", "run"], environment, log_path
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            self.check_running()
            try:
                return self.get("/readyz")[0] == 200
            except OSError:
                return False

        wait_until(ready, timeout=timeout, what=f"the worker to be ready (log: {self.log_path})")

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics as {'name{label="v",...}': value} (labels sorted)."""
        status, text = self.get("/metrics")
        assert status == 200, text
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def sample(self, name: str) -> float | None:
        """One sample of /metrics; None while the endpoint is not up (yet)."""
        self.check_running()
        try:
            return self.metrics().get(name)
        except OSError:
            return None

    def wait_exit(self, timeout: float = PROCESS_TIMEOUT) -> int:
        return super().wait_exit(timeout)


def start(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path, **env: str
) -> WorkerProcess:
    """Starts a worker on `stream`, logging into `tmp_path`, and adds it to `workers`."""
    worker = WorkerProcess(stream, tmp_path / f"worker-{len(workers)}.log", **env)
    workers.append(worker)
    return worker


def produce(
    bootstrap_servers: str,
    topic: str,
    messages: Iterable[bytes | tuple[bytes | None, bytes | None] | None],
    headers: list[tuple[str, bytes]] | None = None,
    partition: int | None = None,
) -> int:
    """Publishes message values (or (key, value) pairs), to `partition` if given (else where
    the key leads), and waits for every ack."""
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)
    count = 0
    try:
        futures = []
        for message in messages:
            key, value = message if isinstance(message, tuple) else (None, message)
            futures.append(
                producer.send(
                    topic, key=key, value=value, headers=headers or [], partition=partition
                )
            )
            count += 1
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=0)
    finally:
        producer.close(timeout=10)
    return count


def end_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def stored_offsets(database_url: str, group_id: str, topic: str) -> dict[int, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT partition, next_offset FROM consumer_offsets "
            "WHERE consumer_group = %s AND topic = %s",
            (group_id, topic),
        ).fetchall()
    return dict(rows)


def wait_caught_up(stream: Stream, timeout: float = PROCESS_TIMEOUT, group: str = "") -> None:
    """Waits until the group's offsets reach the topic's end on every partition: stored in
    PostgreSQL, then committed to Kafka. A worker commits to Kafka only once it has counted
    the batch in /metrics, so its metrics are up to date too."""
    ends = {p: o for p, o in end_offsets(stream.bootstrap_servers, stream.topic).items() if o}
    group_id = group or stream.group_id

    def caught_up() -> bool:
        stored = stored_offsets(stream.database_url, group_id, stream.topic)
        return all(stored.get(p, 0) >= end for p, end in ends.items())

    wait_until(caught_up, timeout=timeout, what=f"group {group_id} to store {stream.topic} {ends}")
    consumer = KafkaConsumer(
        bootstrap_servers=stream.bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    try:

        def committed() -> bool:
            return all(
                (consumer.committed(TopicPartition(stream.topic, p)) or 0) >= end
                for p, end in ends.items()
            )

        wait_until(committed, timeout=timeout, what=f"group {group_id} to commit {ends} to Kafka")
    finally:
        consumer.close(autocommit=False)


def read_topic(
    bootstrap_servers: str, topic: str, expected: int, timeout: float = 30.0
) -> list[Any]:
    """Reads `expected` records from the start of `topic` (fails if fewer arrive)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    records: list[Any] = []
    try:

        def enough() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            return len(records) >= expected

        wait_until(enough, timeout=timeout, what=f"{expected} records on {topic}")
    finally:
        consumer.close()
    return records


def query(database_url: str, sql: str, params: Mapping[str, Any] | tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()
