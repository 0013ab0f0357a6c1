"""Migration files: naming, ordering and checksums, without a database."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from worker.db.ledger import LEDGER_MIGRATION
from worker.db.migrate import default_migrations_dir, load_migrations
from worker.errors import MigrationError


def test_bundled_migrations_load_in_order() -> None:
    """The repository's migrations are well named, numbered from 1 and strictly increasing."""
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(versions)
    assert versions[0] == 1
    first = migrations[0]
    data = (default_migrations_dir() / first.name).read_bytes()
    assert first.checksum == hashlib.sha256(data).hexdigest()


def test_files_load_sorted_by_version(tmp_path: Path) -> None:
    """Versions order the files, whatever order the directory lists them in."""
    (tmp_path / "0010_later.sql").write_text("SELECT 10;")
    (tmp_path / "0002_earlier.sql").write_text("SELECT 2;")
    assert [m.version for m in load_migrations(tmp_path)] == [2, 10]


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "0001_.sql"])
def test_misnamed_files_are_refused(tmp_path: Path, name: str) -> None:
    """A .sql file not named NNNN_lowercase_name.sql stops the run with its name."""
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=name):
        load_migrations(tmp_path)


def test_repeated_versions_are_refused(tmp_path: Path) -> None:
    """Two files with one version number are ambiguous and refused."""
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="version 1"):
        load_migrations(tmp_path)


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    """No migrations at all is a packaging mistake, not an empty schema."""
    with pytest.raises(MigrationError, match="no migrations"):
        load_migrations(tmp_path)


def test_reconcile_names_the_migration_that_created_the_offset_ledger() -> None:
    """reconcile tells rows stored before the ledger by that migration's time: it must exist."""
    assert LEDGER_MIGRATION in {m.name for m in load_migrations()}
