"""The `roi-worker` command line: the parser of every command, and how a failure ends one.

Exit codes (worker.cli.exits): 0 success; 1 the operation failed (unreachable service, refused
migration, invalid events); 2 usage or configuration error. Every failure is one line on
stderr, never a traceback.

Each command group is a module of worker.cli that registers its parser and imports what its
commands need only when one of them runs: building the parser loads no Kafka client, database
driver, pydantic model or web framework, so `roi-worker --help` takes well under 0.1 s
(tests/unit/cli/test_cli.py checks it; `make bench-startup` measures it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, TypeGuard

from .. import __version__
from ..errors import ConfigurationError, RoiWorkerError
from ..redaction import redacted_output
from . import (
    api,
    contract,
    demo,
    dlq,
    migrate,
    offsets,
    ratings,
    reconcile,
    replay,
    report,
    run,
    summaries,
)
from .exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, PROG, UsageError, fail

if TYPE_CHECKING:
    import psycopg


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line instead of usage plus message."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every command and its arguments, in the order `--help` lists them."""
    parser = _Parser(
        prog=PROG,
        description="Stores automation execution events from Kafka in PostgreSQL and keeps "
        "exact per-pattern ROI summaries.",
        epilog="Configuration comes from ROI_* environment variables (README: Configuration).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    groups = (
        migrate,
        contract,
        run,
        api,
        demo,
        report,
        ratings,
        summaries,
        dlq,
        offsets,
        reconcile,
        replay,
    )
    for group in groups:
        group.register(commands)
    return parser


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
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `roi-worker check-events | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        failure = _failure(exc)
        if failure is None:  # a bug: its traceback says where
            raise
        return fail(*failure)


def _failure(exc: Exception) -> tuple[str, int] | None:
    """The one-line message and exit code of an error that ends a command; None for any other
    exception."""
    if _is_database_error(exc):
        from ..db.connect import translate

        exc = translate(exc)
    if isinstance(exc, UsageError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, ConfigurationError):
        return f"configuration error: {exc}", EXIT_USAGE
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", EXIT_FAILED
    if isinstance(exc, RoiWorkerError):
        return str(exc), EXIT_FAILED
    return None


def _is_database_error(exc: Exception) -> TypeGuard[psycopg.Error]:
    """Whether psycopg raised `exc`. Only commands that use the database load psycopg: when it
    is not loaded, no error can be one of its."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)
