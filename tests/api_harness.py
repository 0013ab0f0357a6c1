"""Runs `roi-worker api` as a real process on a free port of 127.0.0.1 and talks HTTP to it, or
calls the application in-process (`asgi_request`) when a test needs to fake a backend."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from tests.child_process import LoggedProcess
from tests.helpers import wait_until
from tests.worker_harness import START_TIMEOUT, free_port

# The write token every test API accepts unless its env sets ROI_API_WRITE_TOKENS itself.
WRITE_TOKEN = "test-write-token-0123456789"


class ApiProcess(LoggedProcess):
    """One `roi-worker api` process with its log in `log_path`; `env` is its whole ROI_* setup.

    Requests carry the first write token of its setup (`token`), unless told otherwise.
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
        argv = [
            sys.executable,
            "-m",
            "worker",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        environment = {
            **clean,
            "ROI_API_CACHE_SECONDS": "0",
            "ROI_API_WRITE_TOKENS": WRITE_TOKEN,
            **env,
        }
        self.token = environment["ROI_API_WRITE_TOKENS"].split(",")[0] or None
        super().__init__("roi-worker api", argv, environment, log_path)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str | None] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, the JSON body (or text when not JSON), headers). `headers` adds to or
        replaces (None: leaves out) the defaults: JSON content type, the bearer token."""
        sent: dict[str, str | None] = {
            "Content-Type": "application/json" if body is not None else None,
            "Authorization": f"Bearer {self.token}" if self.token else None,
            **(headers or {}),
        }
        request = urllib.request.Request(  # noqa: S310  (http://127.0.0.1 only)
            f"{self.base_url}{path}",
            data=body,
            method=method,
            headers={name: value for name, value in sent.items() if value is not None},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                status, raw, answered = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            with exc:
                status, raw, answered = exc.code, exc.read(), dict(exc.headers)
        try:
            return status, json.loads(raw), answered
        except ValueError:
            return status, raw.decode(errors="replace"), answered

    def get(self, path: str) -> tuple[int, Any]:
        status, body, _ = self.request("GET", path)
        return status, body

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        status, answer, _ = self.request("POST", path, body)
        return status, answer

    def wait_up(self, path: str = "/healthz", timeout: float = START_TIMEOUT) -> None:
        def up() -> bool:
            self.check_running()
            try:
                return self.get(path)[0] == 200
            except OSError:
                return False

        wait_until(up, timeout=timeout, what=f"roi-worker api {path} (log: {self.log_path})")


async def asgi_request(
    app: Any, method: str, path: str, body: bytes = b"", token: str | None = WRITE_TOKEN
) -> tuple[int, bytes]:
    """One request straight to an ASGI application: (status, body). No lifespan runs, so the
    application's backends are never opened. `token` is sent as the bearer token."""
    done = anyio.Event()
    messages: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    path_only, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path_only,
        "raw_path": path_only.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *([(b"authorization", f"Bearer {token}".encode())] if token else []),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    try:
        await app(scope, receive, send)
    finally:
        done.set()
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    return status, b"".join(
        m.get("body", b"") for m in messages if m["type"] == "http.response.body"
    )
