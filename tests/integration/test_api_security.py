"""The API's access rules and limits (DESIGN.md "HTTP API security", docs/api.md "Access" and
"Limits"), against real `roi-worker api` processes: bearer tokens, JSON-only POSTs, header and
body deadlines, the connection limit, and client disconnects logged as one line."""

from __future__ import annotations

import http.client
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from tests.api_harness import WRITE_TOKEN, ApiProcess
from tests.cli_runner import RoiWorker
from tests.fixtures.services import Services, create_topic, delete_topics, new_database
from tests.helpers import wait_until
from tests.worker_harness import Stream
from worker.contract import json_codec
from worker.db.migrate import load_migrations, migrate

ROI = "/api/roi-tracking"
READ_TOKEN = "test-read-token-abcdefghij"
# Deadlines short enough for a test, long enough for a slow machine's honest client.
HEADER_SECONDS = 1.5
BODY_SECONDS = 1.5
MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def stream(services: Services, kafka_admin: KafkaAdminClient) -> Iterator[Stream]:
    topic = create_topic(kafka_admin, "api-security", 1)
    with new_database(services, "api_security") as url:
        migrate(url, load_migrations())
        yield Stream(services.kafka_bootstrap_servers, topic, f"{topic}.dlq", "security", url)
    delete_topics(kafka_admin, topic)


@pytest.fixture(scope="module")
def api(stream: Stream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """Write and read tokens, short deadlines, a small connection limit."""
    env = stream.env(
        ROI_API_READ_TOKENS=READ_TOKEN,
        ROI_API_HEADER_TIMEOUT_SECONDS=str(HEADER_SECONDS),
        ROI_API_BODY_TIMEOUT_SECONDS=str(BODY_SECONDS),
        ROI_API_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    )
    process = ApiProcess(env, tmp_path_factory.mktemp("security") / "api.log")
    try:
        process.wait_up("/readyz")
        yield process
    finally:
        process.close()


def _event() -> bytes:
    return json_codec.dumps(
        {
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "pattern_id": "secure",
            "executed_at": "2026-12-01T10:00:00Z",
            "success": True,
            "execution_time_seconds": 1,
            "estimated_time_seconds": 60,
            "actual_cost": "0.01",
            "estimated_cost": "1.00",
        }
    ).encode()


def test_writes_need_a_write_token(api: ApiProcess) -> None:
    """No token or a wrong one: 401 with a Bearer challenge, and the token is not echoed."""
    url = f"{ROI}/executions"
    status, body, headers = api.request("POST", url, _event(), {"Authorization": None})
    assert (status, headers["www-authenticate"]) == (401, "Bearer")
    assert "bearer token is required" in body["detail"]
    for wrong in ("wrong-token-0123456789", READ_TOKEN, f"{WRITE_TOKEN}x", WRITE_TOKEN[:-1]):
        status, body, headers = api.request(
            "POST", url, _event(), {"Authorization": f"Bearer {wrong}"}
        )
        assert status == 401, wrong
        assert headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert wrong not in str(body)
    assert api.request("POST", url, _event())[0] == 202


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None],
)
def test_posts_must_be_json(api: ApiProcess, content_type: str | None) -> None:
    """The content types a web page may send cross-site without asking are refused: 415."""
    status, body, _ = api.request(
        "POST", f"{ROI}/executions", _event(), {"Content-Type": content_type}
    )
    assert status == 415, body
    assert "application/json" in body["detail"]


def test_json_with_parameters_is_json(api: ApiProcess) -> None:
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    assert api.request("POST", f"{ROI}/executions", _event(), headers)[0] == 202


def test_reads_need_a_token_when_read_tokens_are_set(api: ApiProcess) -> None:
    """A read or write token reads; none or a wrong one gets 401; probes and OpenAPI stay open."""
    path = f"{ROI}/summary"
    assert api.request("GET", path, headers={"Authorization": None})[0] == 401
    bad = {"Authorization": "Bearer not-a-token-0123456789"}
    assert api.request("GET", path, headers=bad)[0] == 401
    for token in (READ_TOKEN, WRITE_TOKEN):
        assert api.request("GET", path, headers={"Authorization": f"Bearer {token}"})[0] == 200
    for open_path in ("/healthz", "/readyz", "/openapi.json"):
        assert api.request("GET", open_path, headers={"Authorization": None})[0] == 200


def test_openapi_declares_the_bearer_scheme(api: ApiProcess) -> None:
    document = api.get("/openapi.json")[1]
    assert document["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    post = document["paths"][f"{ROI}/executions"]["post"]
    assert post["security"] == [{"bearerToken": []}]
    assert {"401", "408", "413", "415"} <= set(post["responses"])


def test_headers_trickled_past_the_deadline_lose_the_connection(api: ApiProcess) -> None:
    """A client sending a byte of its headers now and then is cut off at the header deadline,
    however long it keeps trickling; honest clients are served meanwhile."""
    slow = [socket.create_connection(("127.0.0.1", api.port), timeout=10) for _ in range(4)]
    started = time.monotonic()
    try:
        request = f"GET {ROI}/summary HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode()
        for sock in slow:
            sock.sendall(request)
        closed: set[int] = set()

        def all_closed() -> bool:
            for index, sock in enumerate(slow):
                if index in closed:
                    continue
                try:
                    sock.sendall(b"a")  # keeps trickling: resets any idle timer
                    sock.settimeout(0.05)
                    if sock.recv(1024) == b"":
                        closed.add(index)
                except TimeoutError:
                    continue
                except OSError:
                    closed.add(index)
            return len(closed) == len(slow)

        wait_until(all_closed, timeout=HEADER_SECONDS + 10, what="slow header clients cut off")
        assert time.monotonic() - started >= HEADER_SECONDS * 0.9
        assert api.get("/healthz")[0] == 200
    finally:
        for sock in slow:
            sock.close()
    assert "no complete request headers within" in api.log()


def test_a_body_slower_than_its_deadline_gets_408(api: ApiProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=HEADER_SECONDS + 20)
    try:
        connection.putrequest("POST", f"{ROI}/executions")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Authorization", f"Bearer {WRITE_TOKEN}")
        connection.putheader("Content-Length", "1000")
        connection.endheaders(b"[")
        response = connection.getresponse()
        assert response.status == 408
        assert response.getheader("Connection") == "close"
    finally:
        connection.close()


def test_a_client_leaving_mid_body_is_one_info_line(api: ApiProcess) -> None:
    before = api.log().count("disconnected before sending its body")
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    with sock:
        sock.sendall(
            f"POST {ROI}/executions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {WRITE_TOKEN}\r\nContent-Length: 1000\r\n\r\n[".encode()
        )
    wait_until(
        lambda: api.log().count("disconnected before sending its body") == before + 1,
        timeout=BODY_SECONDS + 10,
        what="the disconnect's log line",
    )
    assert "Traceback" not in api.log()
    assert " ERROR " not in api.log()


def test_connections_beyond_the_limit_get_503(api: ApiProcess) -> None:
    """Idle connections count: beyond ROI_API_MAX_CONNECTIONS a request gets 503 at once."""
    held = [socket.create_connection(("127.0.0.1", api.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        status, _, _ = api.request("GET", "/healthz")
        assert status == 503
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: api.get("/healthz")[0] == 200, timeout=10, what="the API answers again")


def test_the_api_refuses_to_start_with_open_writes_by_mistake(roi_worker: RoiWorker) -> None:
    """Writes enabled, no write token, no explicit opt-in: a one-line error, exit 2."""
    outcome = roi_worker("postgresql://roi@127.0.0.1:1/roi", "api", "--port", "1")
    assert outcome.code == 2
    assert "ROI_API_WRITE_TOKENS is not set" in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("setting", "anonymous_post"), [("ROI_API_WRITES", 404), ("ROI_API_ANONYMOUS_WRITES", 202)]
)
def test_read_only_and_anonymous_apis_start(
    stream: Stream, tmp_path: Path, setting: str, anonymous_post: int
) -> None:
    """ROI_API_WRITES=false has no POST at all; ROI_API_ANONYMOUS_WRITES=true takes any."""
    value = "false" if setting == "ROI_API_WRITES" else "true"
    process = ApiProcess(
        stream.env(ROI_API_WRITE_TOKENS="", **{setting: value}), tmp_path / "a.log"
    )
    try:
        process.wait_up()
        status, _, _ = process.request("POST", f"{ROI}/executions", _event())
        assert status == anonymous_post
        assert process.get(f"{ROI}/summary")[0] == 200
    finally:
        process.close()
