"""The HTTP endpoints operators and orchestrators poll: /metrics, /healthz and /readyz.

- /healthz answers 200 while the consuming loop is alive (it ticked within LIVENESS_SECONDS);
  a stuck loop answers 503, so Kubernetes restarts the pod.
- /readyz answers 200 while the worker can store events, 503 otherwise (database or broker
  down, a partition stuck, starting up, shutting down). Not ready is not dead: the worker keeps
  its partitions.
- /healthz also answers 503 while the worker is stalled with no outage to explain it: a
  partition it owns has had lag and stored nothing for ROI_STALL_SECONDS (worker/consume/stall.py),
  so an orchestrator restarts it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..redaction import redact

log = logging.getLogger(__name__)

# Longer than the slowest healthy step: a batch of ROI_BATCH_MAX_SECONDS (at most 60 s) whose
# statement may run up to the 60 s statement_timeout.
LIVENESS_SECONDS: Final = 150.0


class WorkerStatus:
    """What the consuming loop tells the endpoints. Safe to share across threads.

    Readiness is the loop's own verdict (`set_ready`) and every open problem (`set_problem`:
    the broker unreachable, partitions stuck); the worker is ready only with none.
    """

    def __init__(self) -> None:
        self._last_tick = time.monotonic()
        self._ready = False
        self._reason = "starting"
        self._problems: dict[str, str] = {}
        self._stalled: str | None = None
        self._lock = threading.Lock()

    def tick(self) -> None:
        self._last_tick = time.monotonic()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        with self._lock:
            self._ready, self._reason = ready, reason

    def set_problem(self, name: str, problem: str | None) -> None:
        """Opens (or, with None, closes) a problem that makes the worker not ready."""
        with self._lock:
            if problem is None:
                self._problems.pop(name, None)
            else:
                self._problems[name] = problem

    def set_stalled(self, reason: str | None) -> None:
        """A stalled worker is not alive either: /healthz fails until it stores again."""
        with self._lock:
            self._stalled = reason

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            reasons = [] if self._ready else [self._reason or "not ready"]
            reasons += self._problems.values()
        return (False, "; ".join(reasons)) if reasons else (True, "ready")

    def alive(self) -> tuple[bool, str]:
        idle = time.monotonic() - self._last_tick
        if idle > LIVENESS_SECONDS:
            return False, f"the consuming loop has not run for {idle:.0f} s"
        with self._lock:
            if self._stalled is not None:
                return False, self._stalled
        return True, "alive"


# How often the serving thread looks for a stop request: `stop` waits up to this long, and so
# does every stop of the worker (socketserver's default, 0.5 s, made each stop that slow).
SHUTDOWN_POLL_SECONDS = 0.05


class StatusServer:
    """Serves the endpoints from a daemon thread."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, status: WorkerStatus
    ) -> None:
        handler = _handler(registry, status)
        self._server = _QuietServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(SHUTDOWN_POLL_SECONDS,),
            name="status-server",
            daemon=True,
        )

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A scraper that hangs up mid-response is not worth a traceback on stderr.
        log.debug("status request from %s failed", client_address, exc_info=True)


def _handler(registry: CollectorRegistry, status: WorkerStatus) -> type[BaseHTTPRequestHandler]:
    probes: dict[str, Callable[[], tuple[bool, str]]] = {
        "/healthz": status.alive,
        "/readyz": status.ready,
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path in probes:
                ok, reason = probes[path]()
                # Served to anyone who can reach the pod: redacted, and the reasons name no
                # address or user (RetryableError.outage); the log has the details.
                body = f"{redact(reason)}\n".encode()
                self._send(200 if ok else 503, "text/plain; charset=utf-8", body)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s " + format, self.client_address[0], *args)

    return Handler
