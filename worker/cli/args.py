"""Arguments several commands share.

Commands that change state follow kafka-consumer-groups' convention: they print the plan unless
`--execute` is given (`--dry-run` names the default, for scripts that say it explicitly).
"""

from __future__ import annotations

import argparse


def add_execute_argument(parser: argparse.ArgumentParser, change: str) -> None:
    """`--execute` to apply `change` (e.g. "delete the executions"); `--dry-run` to say the
    default, printing the plan only."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--execute", action="store_true", help=f"{change} (without it: the plan)")
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and change nothing: the default, said explicitly",
    )


def plans_only(args: argparse.Namespace) -> bool:
    """True unless the command was told to --execute."""
    return not bool(args.execute)
