"""The `roi-worker` command line.

Exit codes: 0 success; 1 the operation failed (unreachable service, refused migration, invalid
events); 2 usage or configuration error. Every failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, NoReturn

from worker import __version__, schemas
from worker.demo import run_demo
from worker.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    InvalidEventError,
    RoiWorkerError,
)
from worker.migrate import load_migrations, migrate, migration_status
from worker.pipeline import Pipeline
from worker.process import ShutdownWatchdog, configure_logging
from worker.settings import load_settings
from worker.validate import parse_event

PROG = "roi-worker"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line instead of usage plus message."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Stores automation execution events from Kafka in PostgreSQL and keeps "
        "exact per-pattern ROI summaries.",
        epilog="Configuration comes from ROI_* environment variables (README: Configuration).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

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

    schema_cmd = commands.add_parser(
        "schema",
        help="print or write the event contract's JSON Schema",
        description="Prints the JSON Schema of event contract v1, generated from the model.",
    )
    schema_cmd.add_argument(
        "--write", type=Path, metavar="DIR", help="write every published schema into DIR instead"
    )
    schema_cmd.set_defaults(handler=_schema)

    check_cmd = commands.add_parser(
        "check-events",
        help="validate events (JSON Lines) against the contract, without Kafka or a database",
        description="Reads one JSON event per line from each FILE ('-' or none: stdin) and "
        "reports every invalid one with its reason and fields. Exit 1 if any is invalid.",
    )
    check_cmd.add_argument("files", nargs="*", type=Path, metavar="FILE")
    check_cmd.set_defaults(handler=_check_events)

    run_cmd = commands.add_parser(
        "run",
        help="consume ROI_TOPIC and store every event (the worker)",
        description="Joins consumer group ROI_GROUP_ID on ROI_TOPIC and stores each event in "
        "PostgreSQL exactly once; invalid ones go to the dead-letter topic. Serves /metrics, "
        "/healthz and /readyz on ROI_METRICS_PORT. SIGTERM or Ctrl-C stops it cleanly.",
    )
    run_cmd.set_defaults(handler=_run)

    demo_cmd = commands.add_parser(
        "demo",
        help="run the worker against the local services and publish a sample stream",
        description="Starts `roi-worker run` (creating the topics, endpoints on 127.0.0.1, log "
        "in .local/demo-worker.log), publishes two weeks of sample events of six patterns plus a "
        "few invalid and duplicated messages, waits until the worker has processed them all, "
        "prints the ROI per pattern and keeps the worker running until Ctrl-C.",
    )
    demo_cmd.add_argument(
        "--seconds",
        type=_seconds,
        default=None,
        metavar="N",
        help="stop after N seconds, 0: right after the table (default: DEMO_SECONDS, else "
        "run until Ctrl-C)",
    )
    demo_cmd.set_defaults(handler=_demo)
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, not {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigurationError as exc:
        return _fail(f"configuration error: {exc}", EXIT_USAGE)
    except RoiWorkerError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):  # e.g. `roi-worker check-events | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_FAILED
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_FAILED)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _migrate(args: argparse.Namespace) -> int:
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


def _schema(args: argparse.Namespace) -> int:
    if args.write:
        for path in schemas.write_all(args.write):
            print(f"wrote {path}")
    else:
        sys.stdout.write(schemas.render(schemas.execution_event_schema()))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    del args
    settings = load_settings()
    configure_logging(settings.log_level)
    pipeline = Pipeline(settings)
    watchdog = ShutdownWatchdog(pipeline.stop)
    watchdog.install()
    try:
        pipeline.run()
    except BrokerUnavailableError as exc:
        return _fail(f"cannot start: {exc}", EXIT_FAILED)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    seconds: float | None = args.seconds
    if seconds is None and os.environ.get("DEMO_SECONDS", "").strip():
        try:
            seconds = _seconds(os.environ["DEMO_SECONDS"].strip())
        except argparse.ArgumentTypeError as exc:
            raise ConfigurationError(f"DEMO_SECONDS: {exc}") from None
    settings = load_settings()
    configure_logging(settings.log_level)
    return run_demo(settings, seconds)


def _check_events(args: argparse.Namespace) -> int:
    invalid = total = 0
    for name, stream in _inputs(args.files):
        with stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                total += 1
                try:
                    parse_event(line.rstrip(b"\r\n"))
                except InvalidEventError as exc:
                    invalid += 1
                    print(f"{name}:{number}: {exc}")
    print(f"{total - invalid} valid, {invalid} invalid")
    return EXIT_FAILED if invalid else EXIT_OK


def _inputs(files: list[Path]) -> list[tuple[str, BinaryIO]]:
    if not files or files == [Path("-")]:
        return [("<stdin>", sys.stdin.buffer)]
    opened: list[tuple[str, BinaryIO]] = []
    for path in files:
        try:
            opened.append((str(path), path.open("rb")))
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    return opened
