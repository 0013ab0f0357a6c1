"""PostgreSQL connections: one place that turns connection failures into clear errors."""

from __future__ import annotations

from typing import Any

import psycopg

from worker.errors import ConfigurationError, DatabaseUnavailableError
from worker.settings import redact_url

CONNECT_TIMEOUT_SECONDS = 10


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
            f"cannot connect to PostgreSQL at {redact_url(conninfo)}: {first_line(exc)}"
        ) from None
    except psycopg.ProgrammingError:  # unparseable conninfo; libpq's message would quote it
        raise ConfigurationError("ROI_DATABASE_URL is not a valid PostgreSQL URL") from None


def first_line(exc: BaseException) -> str:
    """The first meaningful line of an error, without libpq's 'connection failed:' preamble."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text.removeprefix("connection failed: ")
