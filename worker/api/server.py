"""Runs the API under uvicorn until SIGTERM or Ctrl-C (then in-flight requests finish).

What a client may hold (docs/api.md "Limits"): uvicorn answers 503 beyond
ROI_API_MAX_CONNECTIONS connections or requests, refuses headers over MAX_HEADER_BYTES, and
closes a connection idle after a response for KEEP_ALIVE_SECONDS; `_DeadlineProtocol` closes one
whose request headers have not all arrived ROI_API_HEADER_TIMEOUT_SECONDS after it opened or
after its previous response (a client trickling bytes resets uvicorn's idle timer, not this
deadline). The app itself gives a body ROI_API_BODY_TIMEOUT_SECONDS
(worker/api/routes/ingestion.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..settings import Settings
from .app import create_app
from .security import check_write_access

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024  # h11's default, stated: a request line and headers together
KEEP_ALIVE_SECONDS = 5


def graceful_shutdown_seconds(settings: Settings) -> int:
    """How long in-flight requests get after SIGTERM: a POST publishing when it arrives may
    take up to twice the publish timeout (a blocked send, then the acknowledgements)."""
    return math.ceil(2 * settings.api_publish_timeout_seconds) + 1


def serve(settings: Settings, host: str, port: int) -> int:
    """Serves on host:port; returns 0 after a clean stop.

    Raises OSError (e.g. the port is in use) before anything starts: the socket is bound here,
    so that a bad address is a one-line error rather than uvicorn's exit. Raises
    ConfigurationError when writes would be open to anyone by mistake.
    """
    check_write_access(settings)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every request on a reused connection waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        log_config=None,  # the logging of worker.process, like every command
        access_log=False,
        timeout_graceful_shutdown=graceful_shutdown_seconds(settings),
        server_header=False,
        http=_deadline_protocol(settings.api_header_timeout_seconds),
        limit_concurrency=settings.api_max_connections,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    server = _Server(config, app.state.live_feed.stop)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    log.info("roi-worker api on http://%s:%d (OpenAPI at /docs)", shown, port)
    # uvicorn stops gracefully on SIGTERM or SIGINT and then raises the signal again with the
    # handler it found: this one makes that (or a signal before uvicorn took over) a clean exit
    # 0, as for the worker.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stopped)
    with sock:
        server.run(sockets=[sock])
    return 0


class _Server(uvicorn.Server):
    """uvicorn's server, which first ends the dashboard's live streams when it stops: they
    never end by themselves, and uvicorn waits for every response to end (up to
    graceful_shutdown_seconds)."""

    def __init__(self, config: uvicorn.Config, stopping: Callable[[], None]) -> None:
        super().__init__(config)
        self._stopping = stopping

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._stopping()
        await super().shutdown(sockets)


def _deadline_protocol(seconds: float) -> type[H11Protocol]:
    class Protocol(_DeadlineProtocol):
        header_timeout = seconds

    return Protocol


class _DeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers."""

    header_timeout: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        self._arm()  # the next request's headers are due; a pipelined one disarms it at once
        super().on_response_complete()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers arrived whole
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.info(
                "closed a connection from %s: no complete request headers within %g s "
                "(ROI_API_HEADER_TIMEOUT_SECONDS)",
                _peer(self.client),
                self.header_timeout,
            )
            self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "an unknown peer"


def _stopped(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise SystemExit(0)
