"""`roi-worker schema` and `roi-worker check-events`: the event contract, without Kafka or a
database: its JSON Schema, and whether given events keep it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ConfigurationError, InvalidEventError
from .exits import EXIT_FAILED, EXIT_OK


def register(commands: Any) -> None:
    """Adds `schema` and `check-events` to the `roi-worker` subcommands."""
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


def _schema(args: argparse.Namespace) -> int:
    from .. import schemas

    if args.write:
        for path in schemas.write_all(args.write):
            print(f"wrote {path}")
    else:
        sys.stdout.write(schemas.render(schemas.execution_event_schema()))
    return EXIT_OK


def _check_events(args: argparse.Namespace) -> int:
    from ..contract.validate import parse_event

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
