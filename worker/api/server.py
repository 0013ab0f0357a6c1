"""Runs the API under uvicorn until SIGTERM or Ctrl-C (then in-flight requests finish)."""

from __future__ import annotations

import logging
import math
import signal
import socket
from types import FrameType

import uvicorn

from worker.api.app import create_app
from worker.settings import Settings

log = logging.getLogger(__name__)


def graceful_shutdown_seconds(settings: Settings) -> int:
    """How long in-flight requests get after SIGTERM: a POST publishing when it arrives may
    take up to twice the publish timeout (a blocked send, then the acknowledgements)."""
    return math.ceil(2 * settings.api_publish_timeout_seconds) + 1


def serve(settings: Settings, host: str, port: int) -> int:
    """Serves on host:port; returns 0 after a clean stop.

    Raises OSError (e.g. the port is in use) before anything starts: the socket is bound here,
    so that a bad address is a one-line error rather than uvicorn's exit.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,  # the logging of worker.process, like every command
        access_log=False,
        timeout_graceful_shutdown=graceful_shutdown_seconds(settings),
        server_header=False,
    )
    server = uvicorn.Server(config)
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


def _stopped(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise SystemExit(0)
