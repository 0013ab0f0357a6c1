"""What a client of worker/kafka/client.py leaves behind once it is closed, or once it failed to
be made: no I/O thread, no open socket. kafka-python 3.0.12 leaves both in two cases, and a
socket it leaves open fails whichever later test the garbage collector finds it in
(ResourceWarning: unclosed <socket ...>), far from the test that leaked it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.services import SERVICE_TIMEOUT, Services
from tests.helpers import wait_until
from worker.errors import BrokerUnavailableError
from worker.kafka.client import new_admin, new_consumer, new_producer
from worker.kafka.topic_range import open_consumer
from worker.settings import KafkaSettings

BOOTSTRAP_MS = 500  # how long a client waits for a broker that never answers

MAKERS: dict[str, Callable[[KafkaSettings], Any]] = {
    "consumer": lambda settings: new_consumer(settings, bootstrap_timeout_ms=BOOTSTRAP_MS),
    "producer": lambda settings: new_producer(
        settings, bootstrap_timeout_ms=BOOTSTRAP_MS, max_block_ms=BOOTSTRAP_MS
    ),
    "admin": lambda settings: new_admin(settings, bootstrap_timeout_ms=BOOTSTRAP_MS),
}


@pytest.mark.parametrize("kind", MAKERS)
def test_a_client_that_cannot_reach_kafka_leaves_nothing_behind(kind: str) -> None:
    """A client whose bootstrap fails raises BrokerUnavailableError and leaves no I/O thread
    running: kafka-python left its half-made network client running (a thread, its selector
    and its sockets, for the life of the process) at every failed attempt, and a worker makes
    one every few seconds while Kafka is down."""
    before = set(threading.enumerate())
    # The kernel accepts the connections of a listening socket that nobody reads: the client
    # connects, and its bootstrap waits for an answer that never comes.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        with pytest.raises(BrokerUnavailableError, match=f"127.0.0.1:{port}"):
            MAKERS[kind](KafkaSettings(kafka_bootstrap_servers=f"127.0.0.1:{port}"))
    assert sorted(t.name for t in set(threading.enumerate()) - before if t.is_alive()) == []


def test_a_consumer_closed_with_bytes_still_to_send_closes_its_socket(
    services: Services,
) -> None:
    """kafka-python closes a connection that still has bytes to send only once its I/O thread
    has sent them, and close() stops that thread first: a request queued just before close()
    left its connection's socket open, unreferenced, until the collector found it. Here the
    bytes are queued on an idle connection of replay's consumer, which nothing sends before
    close(), as when the thread stops first."""
    consumer = open_consumer(
        KafkaSettings(kafka_bootstrap_servers=services.kafka_bootstrap_servers), "roi-test-close"
    )
    client = consumer._consumer
    client.topics()  # connected
    manager = client._client._manager

    def idle_transport() -> Any:
        for connection in list(manager._conns.values()):
            transport = connection.transport
            if connection.connected and not transport._writing and not transport._write_buffer:
                return transport
        return None

    transport = wait_until(idle_transport, timeout=SERVICE_TIMEOUT, what="an idle connection")
    sock = transport._sock
    try:
        transport._write_buffer.append(b"\x00\x00\x00\x00")  # what transport.write() buffers
        consumer.close()
        left_open = [repr(sock)] if sock.fileno() != -1 else []
    finally:
        sock.close()  # the test's own: no warning for a later test either way
    assert left_open == []
