"""`roi-worker offsets show|reset`: a group's positions, and moving them (docs/operations.md).

Arguments and output only; the logic is worker.ops.offsets. Like every command, failures
propagate to worker.cli.main.main, which prints one line and exits 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any, Final

from worker.ops.offsets import (
    EARLIEST,
    GroupMembers,
    PartitionPosition,
    ResetPlan,
    ResetTarget,
    execute_reset,
    live_members,
    parse_moment,
    plan_reset,
    positions,
    refuse_if_live,
)
from worker.roi.formatting import table
from worker.settings import GROUP_ID_MAX_LENGTH, TOPIC_NAME, load_settings

EXIT_OK: Final = 0
_TOPIC_NAME: Final = re.compile(TOPIC_NAME)
NONE: Final = "-"


def register(commands: Any) -> None:
    """Adds `offsets` with its `show` and `reset` actions to the `roi-worker` subcommands."""
    offsets_cmd = commands.add_parser(
        "offsets",
        help="show a group's stored, committed and end offsets, or reset where it resumes",
        description="Offsets of consumer group ROI_GROUP_ID on ROI_TOPIC. PostgreSQL's stored "
        "offsets decide where the workers resume; Kafka's committed offsets follow them.",
    )
    actions = offsets_cmd.add_subparsers(
        dest="offsets_action", metavar="ACTION", parser_class=type(offsets_cmd)
    )
    actions.required = True

    show_cmd = actions.add_parser(
        "show",
        help="per partition: stored offset, Kafka's committed offset, first and end, lag",
        description="Per partition of the topic: the next offset stored in PostgreSQL for the "
        "group ('-': none yet, the workers start at the first offset), the group's committed "
        "offset in Kafka, the first offset still in the topic, the end offset, and the lag "
        "(end - stored). Also the group's state and live members.",
    )
    _add_scope(show_cmd)
    show_cmd.add_argument("--format", choices=("text", "json"), default="text")
    show_cmd.set_defaults(handler=_show)

    reset_cmd = actions.add_parser(
        "reset",
        help="move the stored offsets (backwards too); prints the plan, applies with --execute",
        description="Sets the group's stored offset of every partition, in PostgreSQL (where the "
        "workers resume) and then in Kafka. Without --execute it only prints the plan. Refuses "
        "while the group has live members: stop its workers first. Events read again are "
        "duplicates and change no summary.",
    )
    target = reset_cmd.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--to-earliest",
        action="store_true",
        help="the first offset still in the topic (replay everything retained)",
    )
    target.add_argument(
        "--to-datetime",
        type=_moment,
        metavar="ISO",
        help="the first offset with a timestamp at or after ISO, which needs a timezone offset "
        "(2026-11-20T00:00:00Z); the end offset where there is none",
    )
    reset_cmd.add_argument(
        "--execute", action="store_true", help="apply the plan (without it: print it only)"
    )
    _add_scope(reset_cmd)
    reset_cmd.set_defaults(handler=_reset)


def _add_scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--group",
        type=group_id_argument,
        default=None,
        help="consumer group (default ROI_GROUP_ID)",
    )
    parser.add_argument(
        "--topic", type=topic_argument, default=None, help="topic (default ROI_TOPIC)"
    )


def group_id_argument(text: str) -> str:
    """An argparse type: a consumer group's name, as Kafka allows it."""
    if not 0 < len(text) <= GROUP_ID_MAX_LENGTH:
        raise argparse.ArgumentTypeError(f"must be 1 to {GROUP_ID_MAX_LENGTH} characters")
    return text


def topic_argument(text: str) -> str:
    """An argparse type: a topic's name, as Kafka allows it."""
    if not _TOPIC_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a topic name (1 to 249 of A-Z a-z 0-9 . _ -)"
        )
    return text


def _moment(text: str) -> ResetTarget:
    try:
        return ResetTarget(parse_moment(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _show(args: argparse.Namespace) -> int:
    settings = load_settings()
    group: str = args.group or settings.group_id
    topic: str = args.topic or settings.topic
    found = positions(settings, group, topic)
    members = live_members(settings, group)
    if args.format == "json":
        sys.stdout.write(json.dumps(positions_document(group, topic, members, found), indent=2))
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_positions(group, topic, members, found))
    return EXIT_OK


def _reset(args: argparse.Namespace) -> int:
    settings = load_settings()
    group: str = args.group or settings.group_id
    topic: str = args.topic or settings.topic
    target: ResetTarget = args.to_datetime or EARLIEST
    # Refuse before planning: the plan of a group still consuming is already out of date.
    members = refuse_if_live(settings, group) if args.execute else live_members(settings, group)
    plan = plan_reset(settings, group, topic, target)
    sys.stdout.write(render_plan(plan))
    if not args.execute:
        if members.live:
            print(
                f"note: group {group} has {members.describe()}; --execute refuses until all "
                "of its workers are stopped"
            )
        print("nothing changed: add --execute to apply")
        return EXIT_OK
    execute_reset(settings, plan)  # checks the members again, inside the transaction
    print(
        f"applied: group {group} resumes {topic} from the new offsets "
        "(stored in PostgreSQL, committed to Kafka)"
    )
    return EXIT_OK


# --------------------------------------------------------------------------- rendering


def positions_document(
    group: str, topic: str, members: GroupMembers, found: Sequence[PartitionPosition]
) -> dict[str, Any]:
    """`offsets show --format json`: stable keys; offsets are null where there is none."""
    return {
        "group": group,
        "topic": topic,
        "group_state": members.state,
        "live_members": members.members,
        "partitions": [
            {
                "partition": p.partition,
                "stored_offset": p.stored,
                "committed_offset": p.committed,
                "first_offset": p.first,
                "end_offset": p.end,
                "lag": p.lag,
            }
            for p in found
        ],
        "total_lag": sum(p.lag for p in found),
    }


def render_positions(
    group: str, topic: str, members: GroupMembers, found: Sequence[PartitionPosition]
) -> str:
    """`offsets show` as text: a header line, one row per partition and the total lag."""
    who = members.describe() if members.live else f"no live members (state {members.state})"
    rows = [
        [
            str(p.partition),
            _offset(p.stored),
            _offset(p.committed),
            str(p.first),
            str(p.end),
            str(p.lag),
            _position_note(p),
        ]
        for p in found
    ]
    rows.append(["total", "", "", "", "", str(sum(p.lag for p in found)), ""])
    header = ["partition", "stored", "committed", "first", "end", "lag", "note"]
    if not any(row[-1] for row in rows):
        header, rows = header[:-1], [row[:-1] for row in rows]
    align = "<>>>>><"[: len(header)]
    lines = [f"group {group} on topic {topic}: {who}", *table(header, rows, align)]
    return "\n".join(lines) + "\n"


def render_plan(plan: ResetPlan) -> str:
    """The reset plan as text: what each partition's stored offset becomes, and the totals."""
    rows = [
        [
            str(p.partition),
            _offset(p.current),
            str(p.new),
            str(p.first),
            str(p.end),
            _change(p.change),
        ]
        for p in plan.partitions
    ]
    header = ["partition", "stored", "new", "first", "end", "change"]
    total = (
        f"{len(plan.partitions)} partitions: {plan.rereads:,} messages to read again "
        "(already stored ones are duplicates)"
    )
    if plan.skips:
        total += f", {plan.skips:,} never read (skipped: their events will not be stored)"
    lines = [
        f"plan: reset group {plan.group} on topic {plan.topic} to {plan.target.describe()}",
        *table(header, rows, "<>>>><"),
        total,
    ]
    return "\n".join(lines) + "\n"


def _offset(offset: int | None) -> str:
    return NONE if offset is None else str(offset)


def _change(change: int) -> str:
    if change < 0:
        return f"re-reads {-change}"
    if change > 0:
        return f"skips {change}"
    return "unchanged"


def _position_note(p: PartitionPosition) -> str:
    if p.stored is None:
        return "nothing stored yet" if p.end > p.first else ""
    if p.stored > p.end:
        return "stored beyond the end: topic recreated?"
    if p.stored < p.first:
        return f"{p.first - p.stored} deleted by retention before they were stored"
    return ""
