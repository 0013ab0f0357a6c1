"""Arguments several commands share.

Commands that change state follow kafka-consumer-groups' convention: they print the plan unless
`--execute` is given (`--dry-run` names the default, for scripts that say it explicitly).
"""

from __future__ import annotations

import argparse
import re


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


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


# Kafka's naming rules are the settings' (worker.settings); they are imported when a name is
# checked, not when the parser is built, so that `roi-worker --help` does not load pydantic.


def group_id_argument(text: str) -> str:
    """An argparse type: a consumer group's name, as Kafka allows it."""
    from ..settings import GROUP_ID_MAX_LENGTH

    if not 0 < len(text) <= GROUP_ID_MAX_LENGTH:
        raise argparse.ArgumentTypeError(f"must be 1 to {GROUP_ID_MAX_LENGTH} characters")
    return text


def topic_argument(text: str) -> str:
    """An argparse type: a topic's name, as Kafka allows it."""
    from ..settings import TOPIC_NAME

    if not re.fullmatch(TOPIC_NAME, text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a topic name (1 to 249 of A-Z a-z 0-9 . _ -)"
        )
    return text
