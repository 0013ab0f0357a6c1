"""`roi-worker migrate`: apply the pending database migrations, or list them with --status."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .exits import EXIT_OK


def register(commands: Any) -> None:
    """Adds `migrate` to the `roi-worker` subcommands."""
    migrate_cmd = commands.add_parser(
        "migrate",
        help="apply pending database migrations (safe to run from several processes at once)",
        description="Applies the pending migrations of migrations/ in one transaction, under an "
        "advisory lock. Needs ROI_DATABASE_URL.",
    )
    migrate_cmd.add_argument(
        "--status", action="store_true", help="list migrations and whether each is applied"
    )
    migrate_cmd.add_argument(
        "--dir", type=Path, default=None, help="migrations directory (default: the bundled ones)"
    )
    migrate_cmd.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    from ..db.migrate import load_migrations, migrate, migration_status
    from ..settings import load_settings

    settings = load_settings()
    migrations = load_migrations(args.dir)
    url = settings.database_url.get_secret_value()
    if args.status:
        for state in migration_status(url, migrations):
            when = (
                f"applied {state.applied_at:%Y-%m-%d %H:%M:%S%z}" if state.applied_at else "pending"
            )
            print(f"{state.migration.name:<40} {when}")
        return EXIT_OK
    applied = migrate(url, migrations)
    for migration in applied:
        print(f"applied {migration.name}")
    latest = migrations[-1].name
    print(f"database {settings.redacted_database_url} is at {latest}")
    return EXIT_OK
