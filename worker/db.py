"""PostgreSQL connections: one place that turns connection failures into clear errors."""

from __future__ import annotations

from typing import Any

import psycopg

from worker.errors import ConfigurationError, DatabaseUnavailableError
from worker.redaction import redact

CONNECT_TIMEOUT_SECONDS = 10

# Long-running connections of the worker: fail fast instead of hanging. A peer that vanished
# without closing (network partition) is noticed in about 25 s; no statement holds a batch (or
# a scrape) for long. A healthy batch holds its row locks for milliseconds, so a lock wait of
# 3 s means a stuck holder: the batch gives up (LockWaitError) and the worker stores its other
# partitions while it reads the held-up one again later (worker/batch.py store_around_locks).
# A worker frozen inside its write transaction (a paused container, a VM stall) loses its
# session after 15 s idle, which frees those locks; a healthy batch is never idle that long
# (the longest wait inside it is dead-lettering refused rows, 10 s at most).
WORKER_SESSION: dict[str, Any] = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "options": (
        "-c statement_timeout=60s -c lock_timeout=3s -c idle_in_transaction_session_timeout=15s"
    ),
}


def connect(conninfo: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """Opens a connection; raises DatabaseUnavailableError with a one-line reason on failure.

    Blocks for at most CONNECT_TIMEOUT_SECONDS per host unless `connect_timeout` is given.
    """
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    kwargs.setdefault("application_name", "roi-worker")
    try:
        return psycopg.connect(conninfo, **kwargs)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(
            f"cannot connect to PostgreSQL at {redact(conninfo)}: {first_line(exc)}"
        ) from None
    except psycopg.ProgrammingError:  # unparseable conninfo; libpq's message would quote it
        raise ConfigurationError("ROI_DATABASE_URL is not a valid PostgreSQL URL") from None


def first_line(exc: BaseException) -> str:
    """The first meaningful line of an error, without libpq's 'connection failed:' preamble."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text.removeprefix("connection failed: ")
