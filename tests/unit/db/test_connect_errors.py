"""worker.db.connect.translate: the one place psycopg errors become ours, by class and SQLSTATE."""

from __future__ import annotations

import ast
from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pg_errors

from worker.db import connect as db
from worker.errors import (
    DatabaseUnavailableError,
    FatalError,
    LockWaitError,
    RetryableError,
    RoiWorkerError,
    SchemaOutdatedError,
)

PACKAGE = Path(__file__).parents[3] / "worker"


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (
            pg_errors.LockNotAvailable("canceling statement due to lock timeout"),
            LockWaitError,
            "PostgreSQL: canceling statement due to lock timeout",
        ),
        (
            psycopg.OperationalError("consuming input failed: server closed the connection"),
            DatabaseUnavailableError,
            "PostgreSQL: consuming input failed: server closed the connection",
        ),
        (
            psycopg.InterfaceError("the connection is closed"),
            DatabaseUnavailableError,
            "PostgreSQL: the connection is closed",
        ),
        (
            pg_errors.AdminShutdown("terminating connection due to administrator command"),
            DatabaseUnavailableError,
            "PostgreSQL: terminating connection due to administrator command",
        ),
        (
            pg_errors.QueryCanceled("canceling statement due to statement timeout"),
            DatabaseUnavailableError,
            "PostgreSQL: canceling statement due to statement timeout",
        ),
        (
            pg_errors.DeadlockDetected("deadlock detected"),
            DatabaseUnavailableError,
            "PostgreSQL: deadlock detected",
        ),
        (
            pg_errors.DiskFull("could not extend file"),
            DatabaseUnavailableError,
            "PostgreSQL: could not extend file",
        ),
        (
            pg_errors.ConnectionFailure("server conn crashed?"),
            DatabaseUnavailableError,
            "PostgreSQL: server conn crashed?",
        ),
        (
            pg_errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
            DatabaseUnavailableError,
            "PostgreSQL: cannot execute INSERT in a read-only transaction",
        ),
        (
            pg_errors.IdleInTransactionSessionTimeout("terminating connection due to idle"),
            DatabaseUnavailableError,
            "PostgreSQL: terminating connection due to idle",
        ),
        (
            pg_errors.UndefinedTable('relation "pattern_roi_daily" does not exist'),
            SchemaOutdatedError,
            'the database schema is not up to date (relation "pattern_roi_daily" does not '
            "exist); run `roi-worker migrate`",
        ),
        (
            pg_errors.UndefinedColumn('column "quality_score" does not exist'),
            SchemaOutdatedError,
            'the database schema is not up to date (column "quality_score" does not exist); '
            "run `roi-worker migrate`",
        ),
        (
            pg_errors.InsufficientPrivilege("permission denied for table pattern_executions"),
            FatalError,
            "PostgreSQL: permission denied for table pattern_executions",
        ),
        (
            pg_errors.UniqueViolation("duplicate key value violates unique constraint"),
            FatalError,
            "PostgreSQL: UniqueViolation: duplicate key value violates unique constraint",
        ),
        (
            pg_errors.ProgramLimitExceeded("statement is too complex"),
            FatalError,
            "PostgreSQL: ProgramLimitExceeded: statement is too complex",
        ),
        (  # client side, no SQLSTATE: a bug of ours, not an outage
            psycopg.ProgrammingError("the query has 1 placeholder but 2 parameters were passed"),
            FatalError,
            "PostgreSQL: ProgrammingError: the query has 1 placeholder but 2 parameters were "
            "passed",
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, psycopg.Error) else None,
)
def test_each_psycopg_error_maps_to_our_error_and_message(
    error: psycopg.Error, kind: type[RoiWorkerError], message: str
) -> None:
    """Each class or SQLSTATE becomes the error the loop acts on, with libpq's first line."""
    translated = db.translate(error)
    assert type(translated) is kind
    assert str(translated) == message


def test_only_a_failed_or_lost_connection_counts_as_lost() -> None:
    """connection_lost: psycopg's error without a SQLSTATE, not a server's answer."""
    assert db.connection_lost(psycopg.OperationalError("server closed the connection"))
    assert db.connection_lost(psycopg.InterfaceError("the connection is closed"))
    assert not db.connection_lost(pg_errors.AdminShutdown("terminating connection"))
    assert not db.connection_lost(pg_errors.QueryCanceled("statement timeout"))
    assert not db.connection_lost(psycopg.ProgrammingError("wrong number of parameters"))


def test_a_missing_privilege_says_what_the_role_needs_when_told() -> None:
    """42501 with `privileges`: the caller's advice follows PostgreSQL's words."""
    error = pg_errors.InsufficientPrivilege("permission denied for table consumer_offsets")
    translated = db.translate(error, privileges="the worker's role needs INSERT")
    assert type(translated) is FatalError
    assert str(translated) == (
        "PostgreSQL: permission denied for table consumer_offsets; the worker's role needs INSERT"
    )


def test_a_vanished_session_table_is_retried_not_a_stale_schema() -> None:
    """42P01 naming one of the session's temporary tables is an outage (a pooler), retried."""
    error = pg_errors.UndefinedTable('relation "roi_staging" does not exist')
    translated = db.translate(error, session_tables=("roi_staging",))
    assert isinstance(translated, DatabaseUnavailableError)
    assert "pooler in transaction mode" in str(translated)
    assert isinstance(db.translate(error), SchemaOutdatedError)


def test_errors_re_raises_ours_with_psycopg_as_the_cause() -> None:
    """The context manager raises the translated error from the original."""
    original = pg_errors.LockNotAvailable("canceling statement due to lock timeout")
    with pytest.raises(LockWaitError) as caught, db.errors():
        raise original
    assert caught.value.__cause__ is original
    assert isinstance(caught.value, RetryableError)


# Where a module other than worker/db/connect.py may name a psycopg exception in an `except`, a
# `suppress(...)` or an `isinstance(...)`, and why: none of these turns a database failure into
# one of our errors by itself (db.translate does), or it is not a database failure at all.
REFUSED_ROW = "a refused row, isolated under savepoints"
ALLOWED: dict[tuple[str, str], str] = {
    ("cli/main.py", "psycopg.Error"): "last resort: _failure has db.translate word it",
    ("api/errors.py", "psycopg.Error"): "the 503 handler: db.translate tells a stale schema apart",
    ("db/migrate.py", "psycopg.Error"): (
        "every failure becomes MigrationError (nothing applied), classified by db.translate "
        "and db.connection_lost"
    ),
    ("metrics.py", "psycopg.Error"): "a failed scrape is logged and counted, never raised",
    ("api/pages/live.py", "psycopg.Error"): (
        "a live stream that cannot read the summaries says `unavailable` and tries again: an "
        "error raised into a streaming response would only cut it"
    ),
    ("consume/store.py", "psycopg.Error"): "cancelling an abandoned store is best effort",
    ("settings.py", "psycopg.ProgrammingError"): "conninfo_to_dict refusing a setting's URL",
    ("consume/write.py", "psycopg.errors.DataError"): REFUSED_ROW,
    ("consume/write.py", "psycopg.errors.IntegrityError"): REFUSED_ROW,
    ("roi/summaries.py", "psycopg.errors.LockNotAvailable"): (
        "lock_summary_tables returns False by contract; its callers raise SummariesBusyError"
    ),
    ("api/backends.py", "psycopg_pool.PoolTimeout"): (
        "the pool's own wait, named in the DatabaseUnavailableError it raises"
    ),
}


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted psycopg name, from the module's imports."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for name in node.names:
                if name.name.split(".")[0] in {"psycopg", "psycopg_pool"}:
                    aliases[name.asname or name.name.split(".")[0]] = (
                        name.name if name.asname else name.name.split(".")[0]
                    )
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in {
            "psycopg",
            "psycopg_pool",
        }:
            for name in node.names:
                aliases[name.asname or name.name] = f"{node.module}.{name.name}"
    return aliases


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in aliases:
        return ".".join([aliases[node.id], *parts])
    return None


def _caught(node: ast.AST) -> list[ast.expr]:
    """The exception expressions an except, suppress(...) or isinstance(...) names."""
    if isinstance(node, ast.ExceptHandler) and node.type is not None:
        found = node.type
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
        name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        if name == "suppress":
            return list(node.args)
        if name != "isinstance" or len(node.args) != 2:
            return []
        found = node.args[1]
    else:
        return []
    if isinstance(found, ast.Tuple):
        return list(found.elts)
    if isinstance(found, ast.BinOp):  # A | B
        return [found.left, found.right]
    return [found]


def test_only_worker_db_maps_psycopg_errors() -> None:
    """Only worker/db/connect.py catches psycopg errors or reads SQLSTATEs, bar the allowed."""
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module == "db/connect.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        aliases = _aliases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "sqlstate":
                found.add((module, ".sqlstate"))
            for expr in _caught(node):
                name = _dotted(expr, aliases)
                if name is not None:
                    found.add((module, name))
    unexpected = sorted(found - ALLOWED.keys())
    assert not unexpected, (
        f"map psycopg errors in worker/db/connect.py (translate), not in {unexpected}"
    )
    assert not ALLOWED.keys() - found, "an allowance no module needs any more: remove it"
