"""`roi-worker dlq inspect` and `roi-worker dlq redrive`: the dead-letter topic, for operators.

The logic is in worker.ops.dead_letters, loaded when an action runs (it needs Kafka); this
module only parses and prints. It follows worker.cli.main's conventions (which registers it):
bad arguments are one line and exit 2, a failure is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Final

from ..errors import InvalidReason
from .args import add_execute_argument, plans_only, positive_int
from .exits import EXIT_FAILED, EXIT_OK

REASONS = tuple(reason.value for reason in InvalidReason)
# worker.ops.dead_letters' defaults, restated so that building the parser does not load Kafka;
# tests/unit/cli/test_cli.py checks that they agree.
DEFAULT_SAMPLES: Final = 3
DEFAULT_MAX_REDRIVES: Final = 3


def register(commands: Any) -> None:
    """Adds `dlq` and its actions to the `roi-worker` subcommands."""
    dlq = commands.add_parser(
        "dlq",
        help="inspect the dead-letter topic, or redrive its letters to the topic after a fix",
        description="Reads the dead-letter topic (ROI_DLQ_TOPIC) from its first stored offsets "
        "to the end offsets of the moment it starts, so it always ends; workers are not "
        "disturbed (no consumer group).",
    )
    actions = dlq.add_subparsers(dest="dlq_action", metavar="ACTION", parser_class=type(dlq))
    actions.required = True

    inspect_cmd = actions.add_parser(
        "inspect",
        help="count dead letters by reason and source, with samples",
        description="Counts the dead letters by reason and by source topic, the distinct "
        "sources (a letter can be published twice), the time span, and shows up to --samples "
        "letters of each reason: source, error, fields, key and the first bytes of the value.",
    )
    _topic_argument(inspect_cmd)
    inspect_cmd.add_argument(
        "--samples",
        type=_count,
        default=DEFAULT_SAMPLES,
        metavar="N",
        help=f"letters shown per reason (default {DEFAULT_SAMPLES}; 0: none)",
    )
    _format_argument(inspect_cmd)
    inspect_cmd.set_defaults(handler=_inspect)

    redrive_cmd = actions.add_parser(
        "redrive",
        help="re-publish dead letters to ROI_TOPIC after a fix, each at most once; prints the "
        "plan, applies with --execute",
        description="Re-publishes dead letters to ROI_TOPIC with their original key, value "
        "and headers plus roi.redrive.count and roi.redrive.source, and records each in "
        "redriven_dead_letters, so no letter is redriven twice. An event already redriven "
        "--max-redrives times is poison and stays. Without --execute it only prints the plan. "
        "Exit 0 when the whole topic was read.",
    )
    _topic_argument(redrive_cmd)
    redrive_cmd.add_argument(
        "--to-topic",
        metavar="TOPIC",
        help="publish to this topic instead of ROI_TOPIC",
    )
    redrive_cmd.add_argument(
        "--reason",
        type=_reason,
        metavar="REASON",
        help=f"only letters with this roi.error.reason ({', '.join(REASONS)})",
    )
    redrive_cmd.add_argument(
        "--max-redrives",
        type=positive_int,
        default=DEFAULT_MAX_REDRIVES,
        metavar="N",
        help="leave letters whose event was redriven N times already (default "
        f"{DEFAULT_MAX_REDRIVES})",
    )
    add_execute_argument(redrive_cmd, "publish the letters and record them as redriven")
    _format_argument(redrive_cmd)
    redrive_cmd.set_defaults(handler=_redrive, usage_error=redrive_cmd.error)


def _topic_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic", metavar="TOPIC", help="the dead-letter topic (default ROI_DLQ_TOPIC)"
    )


def _format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text", help="default text")


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {text!r}")
    return int(text)


def _reason(text: str) -> str:
    if text not in REASONS:
        raise argparse.ArgumentTypeError(f"no reason {text!r}; one of {', '.join(REASONS)}")
    return text


def _inspect(args: argparse.Namespace) -> int:
    from ..ops import dead_letters as admin
    from ..process import configure_command_logging
    from ..settings import load_settings

    settings = load_settings()
    configure_command_logging(settings.log_level, settings.log_format)
    topic: str = args.topic or settings.dead_letter_topic
    inspection = admin.inspect(settings, topic, args.samples)
    sys.stdout.write(admin.render_inspection(inspection, args.format))
    return EXIT_OK


def _redrive(args: argparse.Namespace) -> int:
    from ..ops import dead_letters as admin
    from ..process import configure_command_logging
    from ..settings import load_settings

    settings = load_settings()
    configure_command_logging(settings.log_level, settings.log_format)
    request = admin.RedriveRequest(
        dlq_topic=args.topic or settings.dead_letter_topic,
        to_topic=args.to_topic or settings.topic,
        reason=args.reason,
        max_redrives=args.max_redrives,
        dry_run=plans_only(args),
    )
    if request.to_topic == request.dlq_topic:
        args.usage_error(f"redriving {request.dlq_topic} into itself; see --to-topic and --topic")
    result = admin.redrive(settings, request)
    sys.stdout.write(admin.render_redrive(result, args.format))
    sys.stdout.flush()
    if result.failure is not None:
        raise result.failure  # one line on stderr, by worker.cli.main
    return EXIT_OK if result.complete else EXIT_FAILED
