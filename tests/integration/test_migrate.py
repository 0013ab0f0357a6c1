"""Migrations against a real PostgreSQL: the schema, the ledger, the lock and the view."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.services import Services, with_database
from tests.helpers import wait_until
from worker.consume import write
from worker.contract.event import ExecutionEvent
from worker.db.migrate import (
    LOCK_KEY,
    default_migrations_dir,
    load_migrations,
    migrate,
    migration_status,
)
from worker.errors import MigrationError

MONEY_COLUMNS = {
    ("pattern_executions", "actual_cost"),
    ("pattern_executions", "estimated_cost"),
    ("pattern_executions", "execution_time_seconds"),
    ("pattern_executions", "estimated_time_seconds"),
    ("pattern_roi_summary", "total_cost_saved_usd"),
    ("pattern_roi_summary", "total_actual_cost_usd"),
    ("pattern_roi_summary", "total_time_saved_seconds"),
    ("pattern_roi_daily", "total_cost_saved_usd"),
    ("pattern_roi_daily", "total_actual_cost_usd"),
    ("pattern_roi_archive", "total_cost_saved_usd"),
    ("pattern_roi_archive", "total_actual_cost_usd"),
}
VIEW_COLUMNS = [
    "pattern_id",
    "total_executions",
    "successful_executions",
    "success_rate",
    "total_time_saved_seconds",
    "total_cost_saved_usd",
    "average_time_saved_seconds",
    "average_cost_saved_usd",
    "roi_percentage",
    "last_updated",
    "negative_savings_executions",
    "cost_anomaly_executions",
    "outcome_success_executions",
    "outcome_failure_executions",
    "outcome_partial_success_executions",
    "outcome_error_executions",
    "quality_scored_executions",
    "quality_score_mean",
    "token_measured_executions",
    "total_tokens_saved",
]


@pytest.fixture(scope="module")
def migrated(database_url: str) -> str:
    migrate(database_url, load_migrations())
    return database_url


@pytest.fixture
def fresh_database(services: Services) -> Iterator[str]:
    """A database of its own for tests that need to start from nothing."""
    name = f"roi_test_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(services.database_url, name)
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_schema_has_every_table_view_and_index(migrated: str) -> None:
    """The first migration creates the tables, the view and the indexes the worker relies on."""
    with psycopg.connect(migrated) as conn:
        relations: dict[str, str] = dict(
            conn.execute(
                "SELECT c.relname, c.relkind FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            )
        )
        columns = {
            (table, column): data_type
            for table, column, data_type in conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public'"
            )
        }
        view_columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'pattern_roi' ORDER BY ordinal_position"
            )
        ]
    for table in (
        "pattern_executions",
        "pattern_roi_summary",
        "pattern_roi_daily",
        "consumer_offsets",
        "schema_migrations",
        "retention_horizon",
        "pattern_roi_archive",
        "redriven_dead_letters",
        "offset_ledger",
    ):
        assert relations.get(table) == "r", table
    assert relations.get("pattern_roi") == "v"
    for index in (
        "pattern_executions_pkey",
        "pattern_executions_pattern_time_idx",
        "pattern_executions_executed_at_idx",
        "consumer_offsets_pkey",
        "offset_ledger_chain_idx",
        "offset_ledger_written_idx",
    ):
        assert relations.get(index) == "i", index
    for key in MONEY_COLUMNS:
        assert columns[key] == "numeric", key
    assert columns[("pattern_executions", "event_id")] == "uuid"
    assert columns[("pattern_executions", "executed_at")] == "timestamp with time zone"
    assert columns[("consumer_offsets", "next_offset")] == "bigint"
    assert view_columns == VIEW_COLUMNS


def test_every_event_field_has_its_column(migrated: str) -> None:
    """The worker COPYs every field of ExecutionEvent (write.COLUMNS, derived from the
    model) into pattern_executions: a field declared without its migration fails here, not by
    going unstored."""
    with psycopg.connect(migrated) as conn:
        found = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = 'pattern_executions'"
            )
        }
    assert set(write.EVENT_COLUMNS) == set(ExecutionEvent.model_fields) - write.NOT_STORED
    missing = [column for column in write.COLUMNS if column not in found]
    assert not missing, f"pattern_executions has no column for {missing}: add a migration"


def _insert_execution(conn: psycopg.Connection[tuple[object, ...]], **changes: object) -> None:
    row: dict[str, object] = {
        "event_id": uuid.uuid4(),
        "schema_version": 1,
        "pattern_id": "p",
        "executed_at": "2026-05-01T00:00:00Z",
        "success": True,
        "execution_time_seconds": Decimal(1),
        "estimated_time_seconds": Decimal(2),
        "actual_cost": Decimal("0.10"),
        "estimated_cost": Decimal("1.00"),
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": 0,
    }
    row.update(changes)
    names = ", ".join(row)
    placeholders = ", ".join(["%s"] * len(row))
    conn.execute(
        f"INSERT INTO pattern_executions ({names}) VALUES ({placeholders})",
        tuple(row.values()),
    )


def test_event_id_is_unique_and_money_is_exact(migrated: str) -> None:
    """A second row with one event_id is refused; amounts come back digit for digit."""
    event_id = uuid.uuid4()
    amount = Decimal("0.30000000000000004")
    with psycopg.connect(migrated) as conn:
        _insert_execution(conn, event_id=event_id, actual_cost=amount)
        stored = conn.execute(
            "SELECT actual_cost FROM pattern_executions WHERE event_id = %s", (event_id,)
        ).fetchone()
        assert stored is not None
        assert stored[0] == amount
        assert str(stored[0]) == "0.30000000000000004"
        with pytest.raises(psycopg.errors.UniqueViolation):
            _insert_execution(conn, event_id=event_id)


@pytest.mark.parametrize(
    "changes",
    [
        {"actual_cost": Decimal("-0.01")},
        {"execution_time_seconds": Decimal(-1)},
        {"pattern_id": "bad id"},
        {"pattern_id": ""},
        {"pattern_id": "p" * 201},
        {"pattern_id": "é"},
        {"quality_score": Decimal("1.5")},
        {"outcome": "won"},
        {"outcome": "error"},  # contradicts success=true
        {"success": False, "outcome": "success"},
    ],
)
def test_database_enforces_the_contract_too(migrated: str, changes: dict[str, object]) -> None:
    """CHECK constraints refuse what the contract forbids, whoever writes the row."""
    with psycopg.connect(migrated) as conn, pytest.raises(psycopg.errors.CheckViolation):
        _insert_execution(conn, **changes)


def test_view_derives_rates_averages_and_roi(migrated: str) -> None:
    """pattern_roi derives the seed's columns from sums; ROI is NULL when nothing was invested."""
    with psycopg.connect(migrated) as conn:
        conn.execute(
            "INSERT INTO pattern_roi_summary (pattern_id, total_executions, successful_executions,"
            " total_time_saved_seconds, total_cost_saved_usd, total_actual_cost_usd) VALUES"
            " ('paying', 4, 3, 100, 30.00, 10.00), ('free', 2, 2, 10, 5.00, 0)"
        )
        rows = {
            row[0]: row
            for row in conn.execute(
                "SELECT pattern_id, success_rate, average_time_saved_seconds,"
                " average_cost_saved_usd, roi_percentage FROM pattern_roi"
            )
        }
        conn.rollback()
    assert rows["paying"][1:] == (Decimal("0.75"), Decimal(25), Decimal("7.5"), Decimal(300))
    assert rows["free"][4] is None


def test_second_run_applies_nothing(migrated: str) -> None:
    """migrate is idempotent: once up to date it applies nothing and changes nothing."""
    assert migrate(migrated, load_migrations()) == ()
    states = migration_status(migrated, load_migrations())
    assert all(state.applied_at is not None for state in states)


def test_changed_migration_is_refused(fresh_database: str, tmp_path: Path) -> None:
    """A migration edited after it was applied stops migrate with a message naming the file."""
    directory = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), directory)
    migrate(fresh_database, load_migrations(directory))
    first = sorted(directory.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(
        MigrationError, match=re.escape(f"{first.name} has changed since it was applied")
    ):
        migrate(fresh_database, load_migrations(directory))


def test_unknown_applied_migration_is_refused(fresh_database: str, tmp_path: Path) -> None:
    """A database migrated by a newer release is not touched by an older one."""
    directory = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), directory)
    (directory / "9999_from_the_future.sql").write_text("SELECT 1;")
    migrate(fresh_database, load_migrations(directory))
    with pytest.raises(MigrationError, match=re.escape("9999_from_the_future.sql")):
        migrate(fresh_database, load_migrations())


def test_failing_migration_applies_nothing(fresh_database: str, tmp_path: Path) -> None:
    """A migration that fails rolls back the whole run, earlier pending files included."""
    directory = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), directory)
    (directory / "9998_broken.sql").write_text("CREATE TABLE ok (id int);\nSELEC broken;")
    with pytest.raises(MigrationError, match=re.escape("9998_broken.sql line 2 failed")):
        migrate(fresh_database, load_migrations(directory))
    with psycopg.connect(fresh_database) as conn:
        row = conn.execute("SELECT to_regclass('pattern_executions'), to_regclass('ok')").fetchone()
    assert row == (None, None)


def migrate_env(database_url: str) -> dict[str, str]:
    """The environment of a `roi-worker migrate` process: ours, with only its own ROI_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
    env["ROI_DATABASE_URL"] = database_url
    return env


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read"])
def test_three_concurrent_migrations_end_with_one_schema(
    fresh_database: str, isolation: str
) -> None:
    """Three `roi-worker migrate` processes at once all succeed and apply each file once.

    The test holds the migration lock until all three are queued on it, so they truly race; it
    does so under both common server defaults for the transaction isolation level.
    """
    env = migrate_env(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True) as holder:
        dbname = holder.info.dbname
        holder.execute(
            f"ALTER DATABASE \"{dbname}\" SET default_transaction_isolation = '{isolation}'"
        )
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "worker", "migrate"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]

        def waiting() -> bool:
            row = holder.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()"
            ).fetchone()
            return row is not None and row[0] == 3

        wait_until(waiting, timeout=60, what="three migrate processes waiting on the lock")
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    applied = [
        line for out, _ in outputs for line in out.splitlines() if line.startswith("applied")
    ]
    assert len(applied) == len(load_migrations())
    with psycopg.connect(fresh_database) as conn:
        ledger = conn.execute(
            "SELECT version, checksum FROM schema_migrations ORDER BY 1"
        ).fetchall()
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert ledger == [(m.version, m.checksum) for m in load_migrations()]
    assert tables == (11,)  # 0009 added pattern_rating_state and pattern_rating_transitions


def test_a_foreign_ledger_is_named(fresh_database: str) -> None:
    """Another tool's schema_migrations table is reported as such, not as a crash."""
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version bigint, dirty boolean)")
    with pytest.raises(MigrationError, match="roi-worker did not create it"):
        migrate(fresh_database, load_migrations())


def test_a_refusing_database_gets_one_line(fresh_database: str) -> None:
    """When the server refuses the DDL (here: no usable schema), migrate says so in one line."""
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET search_path = no_such_schema')
    result = subprocess.run(
        [sys.executable, "-m", "worker", "migrate"],
        env=migrate_env(fresh_database),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "nothing was applied" in lines[0]


def test_the_longest_pattern_id_is_stored(migrated: str) -> None:
    """The pattern_id rule admits every character of the contract, up to 200 of them."""
    pattern_id = ("Az09._:/-" * 23)[:200]
    with psycopg.connect(migrated) as conn:
        _insert_execution(conn, pattern_id=pattern_id)
        stored = conn.execute(
            "SELECT count(*) FROM pattern_executions WHERE pattern_id = %s", (pattern_id,)
        ).fetchone()
    assert stored == (1,)
