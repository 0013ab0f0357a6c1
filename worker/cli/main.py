"""The `roi-worker` command line.

Exit codes: 0 success; 1 the operation failed (unreachable service, refused migration, invalid
events); 2 usage or configuration error. Every failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, cast

import psycopg

from worker import __version__, schemas
from worker.cli import dlq as cli_dlq
from worker.cli import offsets as cli_offsets
from worker.cli import reconcile as cli_reconcile
from worker.cli import replay as cli_replay
from worker.consume.pipeline import Pipeline
from worker.contract.event import PATTERN_ID
from worker.contract.validate import parse_event
from worker.db.connect import connect, translate
from worker.db.migrate import load_migrations, migrate, migration_status
from worker.demo.run import run_demo
from worker.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    InvalidEventError,
    RoiWorkerError,
)
from worker.process import ShutdownWatchdog, configure_logging, tune_gc_for_throughput
from worker.redaction import redacted_output
from worker.roi.analytics import load_analytics, pattern_exists
from worker.roi.methodology import Window
from worker.roi.report import FORMATS, Request, full_report, render
from worker.roi.report_document import Selection
from worker.roi.summaries import find_drift, rebuild
from worker.settings import load_settings

PROG = "roi-worker"
DEFAULT_REPORT = "roi_report.md"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ConfigurationError):
    """Arguments that parse but do not go together; exit 2 like any usage error."""


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

    api_cmd = commands.add_parser(
        "api",
        help="serve the read API and HTTP ingestion (ROI_API_PORT, default 8000)",
        description="Serves the ROI tracking endpoints, usage statistics and event ingestion "
        "over HTTP, with the OpenAPI schema at /openapi.json and /docs (docs/api.md). Reads "
        "PostgreSQL (ROI_DATABASE_URL); POST publishes to ROI_TOPIC. SIGTERM or Ctrl-C stops it.",
    )
    api_cmd.add_argument(
        "--host", default=None, help="address to listen on (default ROI_API_HOST, 0.0.0.0)"
    )
    api_cmd.add_argument(
        "--port",
        type=_port,
        default=None,
        metavar="N",
        help="port to listen on (default ROI_API_PORT, 8000)",
    )
    api_cmd.set_defaults(handler=_api)

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
    _add_report(commands)

    rebuild_cmd = commands.add_parser(
        "rebuild-summaries",
        help="recompute both summary tables from the stored executions (safe while workers run)",
        description="Replaces pattern_roi_summary and pattern_roi_daily with a full recompute "
        "from pattern_executions (plus what retention archived), in one transaction, and lists "
        "the rows it corrected. Workers "
        "may keep running: their batches wait for the rebuild (about a second per million "
        "executions; a batch waiting over 30 s retries) and nothing is lost or counted twice.",
    )
    rebuild_cmd.set_defaults(handler=_rebuild)

    verify_cmd = commands.add_parser(
        "verify",
        help="check the summaries against a full recompute; exit 1 and show the diff on drift",
        description="Compares pattern_roi_summary and pattern_roi_daily with a full recompute "
        "from pattern_executions (plus what retention archived) in one snapshot. Exit 0 when "
        "they agree exactly; exit 1 "
        "with every differing row and column otherwise (repair: rebuild-summaries).",
    )
    verify_cmd.set_defaults(handler=_verify)
    cli_dlq.register(commands)
    cli_offsets.register(commands)
    cli_reconcile.register(commands)
    cli_replay.register(commands)
    return parser


def _add_report(commands: Any) -> None:
    report_cmd = commands.add_parser(
        "report",
        help="per-pattern ROI: top performers, underperformers, one pattern, or a full report",
        description="Reports success rate, savings, ROI, rating and recommendation per pattern "
        "from the summaries in PostgreSQL (docs/reports.md). Without a selection: --summary.",
    )
    selection = report_cmd.add_mutually_exclusive_group()
    selection.add_argument(
        "--summary",
        dest="selection",
        action="store_const",
        const="summary",
        help="top performers, underperformers and overall metrics (the default)",
    )
    selection.add_argument(
        "--pattern-id", metavar="ID", help="everything about one pattern (exit 1 if unknown)"
    )
    selection.add_argument(
        "--top-performers",
        dest="selection",
        action="store_const",
        const="top_performers",
        help="the highest ROI among patterns with enough executions",
    )
    selection.add_argument(
        "--underperformers",
        dest="selection",
        action="store_const",
        const="underperformers",
        help="patterns rated poor or failed",
    )
    selection.add_argument(
        "--report",
        dest="selection",
        action="store_const",
        const="full",
        help="write the full Markdown report to --output",
    )
    report_cmd.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help=f"where --report writes (default {DEFAULT_REPORT})",
    )
    report_cmd.add_argument(
        "--limit", type=_positive, default=10, metavar="N", help="patterns per list (default 10)"
    )
    report_cmd.add_argument(
        "--since",
        metavar="WINDOW",
        help="only executions since: 7d, 30d, 90d (today and the N-1 UTC days before) or a "
        "date YYYY-MM-DD; compared with the previous window of the same length (default: all "
        "time)",
    )
    report_cmd.add_argument("--format", choices=FORMATS, default=None, help="default text")
    report_cmd.add_argument(
        "--min-executions",
        type=_positive,
        default=None,
        metavar="N",
        help="executions a pattern needs to be rated (default ROI_MIN_EXECUTIONS, 10)",
    )
    report_cmd.set_defaults(handler=_report, selection=None)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


def _port(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, not {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, not {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the command writes, its own lines, logs and any traceback, passes through the
    # one redaction path (worker/redaction.py).
    with redacted_output():
        return _dispatch(argv)


def _dispatch(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `roi-worker check-events | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except (RoiWorkerError, OSError, psycopg.Error) as exc:
        return _fail(*_failure(exc))


def _failure(exc: Exception) -> tuple[str, int]:
    """The one-line message and exit code of an error that ends a command."""
    if isinstance(exc, psycopg.Error):
        exc = translate(exc)
    if isinstance(exc, UsageError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, ConfigurationError):
        return f"configuration error: {exc}", EXIT_USAGE
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", EXIT_FAILED
    return str(exc), EXIT_FAILED


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
    configure_logging(settings.log_level, settings.log_format)
    tune_gc_for_throughput()
    pipeline = Pipeline(settings)
    watchdog = ShutdownWatchdog(pipeline.stop)
    watchdog.install()
    try:
        pipeline.run()
    except BrokerUnavailableError as exc:
        if pipeline.stopping:  # asked to stop while it was still starting
            return EXIT_OK
        return _fail(f"cannot start: {exc}", EXIT_FAILED)
    return EXIT_OK


def _api(args: argparse.Namespace) -> int:
    # FastAPI and uvicorn load only for this command, not for every run of the CLI.
    from worker.api.server import serve  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return serve(settings, args.host or settings.api_host, args.port or settings.api_port)


def _demo(args: argparse.Namespace) -> int:
    seconds: float | None = args.seconds
    if seconds is None and os.environ.get("DEMO_SECONDS", "").strip():
        try:
            seconds = _seconds(os.environ["DEMO_SECONDS"].strip())
        except argparse.ArgumentTypeError as exc:
            raise ConfigurationError(f"DEMO_SECONDS: {exc}") from None
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
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


def _report(args: argparse.Namespace) -> int:
    selection: str = "pattern" if args.pattern_id is not None else args.selection or "summary"
    if args.output is not None and selection != "full":
        raise UsageError("--output goes with --report")
    if args.format is not None and selection == "full":
        raise UsageError("--report always writes Markdown; --format is for the other selections")
    settings = load_settings()
    min_executions = args.min_executions or settings.min_executions
    now = datetime.now(UTC)
    try:
        window = Window.parse(args.since, now.date())
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    with connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        if args.pattern_id is not None and not (
            _is_pattern_id(args.pattern_id) and pattern_exists(conn, args.pattern_id)
        ):
            return _fail(
                f"no pattern {args.pattern_id!r}: no execution of it is stored", EXIT_FAILED
            )
        analytics = load_analytics(
            conn,
            window,
            min_executions,
            now,
            pattern_id=args.pattern_id,
            # The summary's text does not show them, and they are the one costly figure.
            percentiles=selection in ("pattern", "full") or args.format in ("json", "csv"),
        )
    # Terminals that cannot show the rating symbols get a replacement, not a traceback.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")
    if selection == "full":
        path: Path = args.output or Path(DEFAULT_REPORT)
        path.write_text(full_report(analytics, args.limit), encoding="utf-8")
        print(f"wrote {path}: {len(analytics.tracked):,} patterns, {_scope(window)}")
        return EXIT_OK
    request = Request(
        cast(Selection, selection), args.format or "text", args.limit, args.pattern_id
    )
    if not analytics.tracked and selection != "pattern":
        message = f"no executions stored {_scope(window)} yet: nothing to report"
        if request.format in ("json", "csv"):  # scripts still get a well-formed, empty answer
            print(message, file=sys.stderr)
        else:
            print(message)
            return EXIT_OK
    sys.stdout.write(render(analytics, request))
    return EXIT_OK


def _is_pattern_id(text: str) -> bool:
    """Whether `text` could name a stored pattern at all (event contract v1)."""
    return PATTERN_ID.fullmatch(text) is not None


def _scope(window: Window) -> str:
    return "over all time" if window.since is None else f"since {window.since}"


def _rebuild(args: argparse.Namespace) -> int:
    del args
    settings = load_settings()
    started = time.monotonic()
    with connect(settings.database_url.get_secret_value()) as conn:
        drift = rebuild(conn)
    took = time.monotonic() - started
    for row in drift:
        print("corrected " + "\n".join(row.describe()))
    print(
        f"rebuilt pattern_roi_summary and pattern_roi_daily in {took:.1f} s: "
        f"{len(drift)} rows corrected"
    )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    del args
    settings = load_settings()
    with connect(settings.database_url.get_secret_value()) as conn:
        drift = find_drift(conn)
    for row in drift:
        print("\n".join(row.describe()))
    if drift:
        print(
            f"{len(drift)} summary rows differ from the recompute; "
            "`roi-worker rebuild-summaries` repairs them"
        )
        return EXIT_FAILED
    print("summaries match a full recompute of the stored executions")
    return EXIT_OK
