"""Schema migrations: numbered plain SQL files, each applied once, in order, atomically.

`migrate` takes a transaction-scoped advisory lock, so any number of processes may run it at
once: the first applies what is pending, the others wait and then find nothing to do. Every
applied file is recorded with its SHA-256; a file changed after it was applied stops the run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from ..errors import LockWaitError, MigrationError, SchemaOutdatedError
from .connect import connect, connection_lost, first_line, translate

FILE_NAME = re.compile(r"^(?P<version>[0-9]{4})_(?P<slug>[a-z0-9_]+)\.sql$")
LOCK_KEY = 0x524F495F4D494752  # "ROI_MIGR": one migration run per database at a time
LOCK_TIMEOUT_SECONDS = 120  # how long a second `migrate` waits for the first to finish

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: `NNNN_slug.sql`, version NNNN, checksum = SHA-256 of its bytes."""

    version: int
    name: str
    sql: str
    checksum: str


@dataclass(frozen=True, slots=True)
class MigrationState:
    """A known migration and when it was applied (None while pending)."""

    migration: Migration
    applied_at: datetime | None


def default_migrations_dir() -> Path:
    """The migrations shipped with this code, the first of these that exists:
    1. `roi_worker/_migrations`, in an installed wheel (pyproject.toml ships them once, under
       the package's collision-free name: roi_worker/__init__.py);
    2. `migrations/` of the source checkout, beside the package's folder.
    """
    package = Path(__file__).resolve().parents[1]  # roi_worker/ or worker/, whichever ran this
    candidates = (package.parent / "roi_worker" / "_migrations", package.parent / "migrations")
    return next((path for path in candidates if path.is_dir()), candidates[-1])


def load_migrations(directory: Path | None = None) -> tuple[Migration, ...]:
    """Reads every `*.sql` file of `directory`, sorted by version.

    Raises MigrationError for a misnamed file, a repeated version or an empty directory.
    """
    directory = directory or default_migrations_dir()
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(
                f"{path.name}: version {version} is also {migrations[version].name}"
            )
        if not path.is_file():
            raise MigrationError(f"{path.name}: not a regular file")
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise MigrationError(f"{path.name}: not UTF-8") from None
        migrations[version] = Migration(version, path.name, text, hashlib.sha256(data).hexdigest())
    if not migrations:
        raise MigrationError(f"no migrations in {directory}")
    return tuple(migrations[version] for version in sorted(migrations))


def migrate(
    conninfo: str,
    migrations: tuple[Migration, ...],
    *,
    lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS,
) -> tuple[Migration, ...]:
    """Applies the pending migrations in one transaction and returns them (empty: up to date).

    Steps, all inside that transaction: 1. take the advisory lock (waits up to
    `lock_timeout_seconds`); 2. create the ledger if missing; 3. check every applied migration is
    still known and unchanged; 4. run each pending file and record it; 5. commit. Any failure
    rolls everything back. Raises DatabaseUnavailableError or MigrationError.
    """
    with connect(conninfo, autocommit=True, application_name="roi-worker migrate") as conn:
        # Whatever the server's defaults: each statement must see what the lock holder before us
        # committed (REPEATABLE READ would freeze the ledger at BEGIN), and DDL must be allowed.
        conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        conn.read_only = False
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, true)",
                    (f"{int(lock_timeout_seconds * 1000)}ms",),
                )
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                conn.execute("SELECT set_config('lock_timeout', '0', true)")
                conn.execute(_CREATE_LEDGER)
                applied = _applied(conn)
                _check_applied(applied, migrations)
                pending = tuple(m for m in migrations if m.version not in applied)
                for migration in pending:
                    _apply(conn, migration)
                return pending
        except psycopg.Error as exc:
            if isinstance(translate(exc), LockWaitError):  # only the advisory lock waits
                raise MigrationError(
                    f"another migration held the lock for more than {lock_timeout_seconds:g} s"
                ) from None
            raise _database_error(exc) from None


def migration_status(conninfo: str, migrations: tuple[Migration, ...]) -> list[MigrationState]:
    """Every known migration with its applied time; raises MigrationError on a changed file."""
    with connect(conninfo, autocommit=True, application_name="roi-worker migrate") as conn:
        try:
            exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
            applied = _applied(conn) if exists and exists[0] else {}
        except psycopg.Error as exc:
            raise _database_error(exc) from None
    _check_applied(applied, migrations)
    return [
        MigrationState(m, applied[m.version][2] if m.version in applied else None)
        for m in migrations
    ]


def _database_error(exc: psycopg.Error) -> MigrationError:
    if connection_lost(exc):
        return MigrationError(f"lost the database connection: {first_line(exc)}")
    return MigrationError(f"the database refused: {first_line(exc)}; nothing was applied")


def _applied(conn: psycopg.Connection[Any]) -> dict[int, tuple[str, str, datetime]]:
    try:
        rows = conn.execute("SELECT version, name, checksum, applied_at FROM schema_migrations")
    except psycopg.Error as exc:
        if not isinstance(translate(exc), SchemaOutdatedError):
            raise
        raise MigrationError(
            "a schema_migrations table exists but roi-worker did not create it (another "
            "migration tool?); give roi-worker its own database or schema"
        ) from None
    return {version: (name, checksum, at) for version, name, checksum, at in rows}


def _check_applied(
    applied: dict[int, tuple[str, str, datetime]], migrations: tuple[Migration, ...]
) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum, applied_at) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {name}, which this version of roi-worker does not "
                "know; run the roi-worker release that added it (or newer)"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"{migration.name} has changed since it was applied on {applied_at:%Y-%m-%d}; "
                "restore the original file and put the change in a new migration"
            )


def _line_of(text: str, position: str | None) -> str:
    """' line N' for PostgreSQL's 1-based character position of an error, or ''."""
    if not position or not position.isdigit():
        return ""
    return f" line {text[: int(position)].count(chr(10)) + 1}"


def _apply(conn: psycopg.Connection[Any], migration: Migration) -> None:
    try:
        # No parameters: psycopg sends the file as one simple query, so it may hold many statements.
        conn.execute(migration.sql.encode())
    except psycopg.Error as exc:
        if connection_lost(exc):
            raise
        raise MigrationError(
            f"{migration.name}{_line_of(migration.sql, exc.diag.statement_position)} failed: "
            f"{exc.diag.message_primary or first_line(exc)}; nothing was applied"
        ) from None
    conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
        (migration.version, migration.name, migration.checksum),
    )
