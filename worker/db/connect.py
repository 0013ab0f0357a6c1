"""PostgreSQL connections, and the one place psycopg's errors become ours.

`translate` (and `errors`, its context-manager form) chooses by exception class and SQLSTATE,
never by message text; libpq's words only ever appear through `first_line`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg

from ..errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    FatalError,
    LockWaitError,
    RoiWorkerError,
    SchemaOutdatedError,
)
from ..redaction import redact

CONNECT_TIMEOUT_SECONDS = 10

# Long-running connections of the worker: fail fast instead of hanging. A peer that vanished
# without closing (network partition) is noticed in about 25 s; no statement holds a batch (or
# a scrape) for long. A healthy batch holds its row locks for milliseconds, so a lock wait of
# 3 s means a stuck holder: the batch gives up (LockWaitError) and the worker stores its other
# partitions while it reads the held-up one again later (consume/store.py, store_around_locks).
# A worker frozen inside its write transaction (a paused container, a VM stall) loses its
# session after 15 s idle, which frees those locks; a healthy batch is never idle that long
# (the longest wait inside it is dead-lettering refused rows, 10 s at most). The server probes
# an idle client too (tcp_keepalives_*): a session of a node that died without closing its
# socket ends in about 25 s, and with it the session advisory lock of the ratings publisher
# (consume/ratings_publisher.py), so another replica takes over instead of waiting for the
# operating system's two-hour default.
WORKER_SESSION: dict[str, Any] = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "options": (
        "-c statement_timeout=60s -c lock_timeout=3s -c idle_in_transaction_session_timeout=15s "
        "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
    ),
}

LOCK_NOT_AVAILABLE: Final = "55P03"
UNDEFINED_TABLE: Final = "42P01"
UNDEFINED_COLUMN: Final = "42703"
INSUFFICIENT_PRIVILEGE: Final = "42501"
# SQLSTATE classes after which the same work may succeed later (DatabaseUnavailableError).
RETRYABLE_CLASSES: Final = frozenset(
    {
        "08",  # connection exception
        "40",  # transaction rollback: serialization failure, deadlock
        "53",  # insufficient resources: disk full, out of memory, too many connections
        "55",  # object not in prerequisite state: object in use (55P03 is a LockWaitError)
        "57",  # operator intervention: statement_timeout, cancel, shutdown, idle session
        "58",  # system error: I/O error outside PostgreSQL
    }
)
RETRYABLE_CODES: Final = frozenset(
    {
        "25006",  # read-only SQL transaction: a failover left us on a standby for a moment
        "25P03",  # idle-in-transaction session timeout
    }
)


def connect(conninfo: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """Opens a connection; raises DatabaseUnavailableError with a one-line reason on failure.

    Blocks for at most CONNECT_TIMEOUT_SECONDS per host unless `connect_timeout` is given.
    """
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    kwargs.setdefault("application_name", "roi-worker")
    try:
        return psycopg.connect(conninfo, **kwargs)
    except psycopg.OperationalError as exc:  # refused, timed out, authentication failed
        raise DatabaseUnavailableError(
            f"cannot connect to PostgreSQL at {redact(conninfo)}: {first_line(exc)}"
        ) from None
    except psycopg.ProgrammingError:  # unparseable conninfo; libpq's message would quote it
        raise ConfigurationError("ROI_DATABASE_URL is not a valid PostgreSQL URL") from None


def connection_lost(exc: psycopg.Error) -> bool:
    """True when the connection failed or was closed (psycopg says so without a SQLSTATE), as
    opposed to the server answering with an error."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not exc.sqlstate


def translate(
    exc: psycopg.Error,
    *,
    privileges: str | None = None,
    session_tables: Collection[str] = (),
) -> RoiWorkerError:
    """Our error for a psycopg error, chosen by its class and SQLSTATE, never its text:

    - 55P03 lock not available (lock_timeout): LockWaitError.
    - The connection failed or was lost (no SQLSTATE), classes 08, 40, 53, 55, 57 and 58,
      codes 25006 and 25P03: DatabaseUnavailableError (retry).
    - 42P01 undefined table naming one of `session_tables`: DatabaseUnavailableError (the
      session's TEMP table vanished: a connection pooler in transaction mode).
    - 42P01 undefined table, 42703 undefined column: SchemaOutdatedError.
    - 42501 insufficient privilege: FatalError, followed by `privileges` (what the role needs).
    - Anything else: FatalError naming psycopg's class.

    The one look at message text: PostgreSQL names no table in 42P01's diagnostics, so the
    `session_tables` (identifiers, the same in every locale) are looked for in its message.
    """
    code = exc.sqlstate or ""
    reason = first_line(exc)
    if code == LOCK_NOT_AVAILABLE:
        return LockWaitError(f"PostgreSQL: {reason}")
    if connection_lost(exc) or code[:2] in RETRYABLE_CLASSES or code in RETRYABLE_CODES:
        return DatabaseUnavailableError(f"PostgreSQL: {reason}")
    if code == UNDEFINED_TABLE and _names_any(exc, session_tables):
        return DatabaseUnavailableError(
            f"PostgreSQL: {reason} (the session's temporary table vanished: a connection "
            "pooler in transaction mode? Connect the worker directly)"
        )
    if code in (UNDEFINED_TABLE, UNDEFINED_COLUMN):
        return SchemaOutdatedError(
            f"the database schema is not up to date ({reason}); run `roi-worker migrate`"
        )
    if code == INSUFFICIENT_PRIVILEGE:
        return FatalError(f"PostgreSQL: {reason}" + (f"; {privileges}" if privileges else ""))
    return FatalError(f"PostgreSQL: {type(exc).__name__}: {reason}")


@contextmanager
def errors(
    *, privileges: str | None = None, session_tables: Collection[str] = ()
) -> Iterator[None]:
    """Re-raises any psycopg error inside as `translate` maps it (the original as its cause)."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc, privileges=privileges, session_tables=session_tables) from exc


def first_line(exc: BaseException) -> str:
    """The first meaningful line of an error, without libpq's 'connection failed:' preamble."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text.removeprefix("connection failed: ")


def _names_any(exc: psycopg.Error, tables: Collection[str]) -> bool:
    message = exc.diag.message_primary or str(exc)
    return any(table in message for table in tables)
