"""`roi-worker offsets show|reset|prune`: a group's positions, moving them, and deleting stale
groups (docs/operations.md).

Arguments and output only; the logic is worker.ops.offsets, loaded when an action runs (it
needs Kafka). Like every command, failures propagate to worker.cli.main.main, which prints one
line and exits 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from ..roi.formatting import table
from .args import add_execute_argument, group_id_argument, plans_only, topic_argument
from .exits import EXIT_FAILED, EXIT_OK, fail

if TYPE_CHECKING:
    from ..ops.offsets import (
        GroupMembers,
        PartitionPosition,
        PruneOutcome,
        PrunePlan,
        ResetPlan,
        ResetTarget,
    )

NONE: Final = "-"


def register(commands: Any) -> None:
    """Adds `offsets` with its `show`, `reset` and `prune` actions to the `roi-worker`
    subcommands."""
    offsets_cmd = commands.add_parser(
        "offsets",
        help="show a group's stored, committed and end offsets, reset where it resumes, or "
        "prune stale groups",
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
    add_execute_argument(reset_cmd, "apply the plan")
    _add_scope(reset_cmd)
    reset_cmd.set_defaults(handler=_reset)

    prune_cmd = actions.add_parser(
        "prune",
        help="delete the stored offsets of groups idle for longer than --older-than (old "
        "backfills); prints the plan, applies with --execute",
        description="Deletes, per stale group, its rows in consumer_offsets and the offset "
        "ledger rows `roi-worker reconcile` no longer needs; the ledger rows of batches whose "
        "executions are still stored stay, marked pruned, so reconcile still accounts for "
        "them. A group is stale when none of its rows was written for longer than "
        "--older-than and Kafka knows no member of it. ROI_GROUP_ID is never pruned unless "
        "named with --group. Without --execute it only prints the plan.",
    )
    prune_cmd.add_argument(
        "--older-than",
        type=_age,
        required=True,
        metavar="AGE",
        help="stale after this long without a write: days or hours, e.g. 30d or 12h",
    )
    prune_cmd.add_argument(
        "--group",
        type=group_id_argument,
        default=None,
        help="only this group (default: every group); the only way to prune ROI_GROUP_ID",
    )
    add_execute_argument(prune_cmd, "delete the stale groups' rows")
    prune_cmd.set_defaults(handler=_prune)


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


def _moment(text: str) -> ResetTarget:
    from ..ops.offsets import ResetTarget, parse_moment

    try:
        return ResetTarget(parse_moment(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _age(text: str) -> timedelta:
    from ..ops.offsets import parse_age

    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _show(args: argparse.Namespace) -> int:
    from ..ops.offsets import live_members, positions
    from ..settings import load_settings

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
    from ..ops.offsets import EARLIEST, execute_reset, live_members, plan_reset, refuse_if_live
    from ..settings import load_settings

    settings = load_settings()
    group: str = args.group or settings.group_id
    topic: str = args.topic or settings.topic
    target: ResetTarget = args.to_datetime or EARLIEST
    # Refuse before planning: the plan of a group still consuming is already out of date.
    execute = not plans_only(args)
    members = refuse_if_live(settings, group) if execute else live_members(settings, group)
    plan = plan_reset(settings, group, topic, target)
    sys.stdout.write(render_plan(plan))
    if not execute:
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


def _prune(args: argparse.Namespace) -> int:
    from ..ops.offsets import PruneRule, execute_prune, plan_prune, refuse_if_live
    from ..settings import load_settings

    settings = load_settings()
    group: str | None = args.group
    execute = not plans_only(args)
    if group is not None and execute:
        refuse_if_live(settings, group)  # like reset: a named group in use is an error
    rule = PruneRule(args.older_than, datetime.now(UTC), settings.group_id, group)
    plan = plan_prune(settings, rule)
    sys.stdout.write(render_prune_plan(plan))
    if not execute:
        if plan.doomed:
            print("nothing changed: add --execute to apply")
        return EXIT_OK
    outcomes = execute_prune(settings, plan)
    sys.stdout.write(render_prune_outcomes(outcomes))
    failed = [outcome.group for outcome in outcomes if outcome.failed is not None]
    if failed:
        return fail(f"pruning failed for {_groups(len(failed))}: {', '.join(failed)}", EXIT_FAILED)
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


def render_prune_plan(plan: PrunePlan) -> str:
    """The prune plan as text: a header with the horizon, one row per group with its last
    activity, its rows and what becomes of it, and the totals."""
    from ..ops.offsets import describe_age

    rule = plan.rule
    scope = f"group {rule.named}" if rule.named else "the groups"
    lines = [
        f"plan: prune {scope} with no row written for {describe_age(rule.older_than)} "
        f"(last activity before {_time(rule.cutoff)})"
    ]
    if not plan.groups:
        who = f"group {rule.named} has no" if rule.named else "no group has"
        lines.append(f"nothing to prune: {who} rows to delete")
        return "\n".join(lines) + "\n"
    header = ["group", "last activity", "offsets", "ledger rows", "executions", "action"]
    rows = [
        [
            c.activity.group,
            _time(c.activity.last_activity),
            f"{c.activity.partitions:,}",
            f"{c.activity.ledger_deleted + c.activity.ledger_kept:,}",
            f"{c.activity.executions:,}",
            "prune" if c.kept is None else f"keep: {c.kept}",
        ]
        for c in plan.groups
    ]
    lines += table(header, rows, "<<>>><")
    doomed = plan.doomed
    if not doomed:
        lines.append("nothing to prune: every group listed stays")
        return "\n".join(lines) + "\n"
    total = (
        f"{len(doomed)} of {_groups(len(plan.groups))} to prune: "
        f"{sum(a.partitions for a in doomed):,} stored offsets and "
        f"{sum(a.ledger_deleted for a in doomed):,} ledger rows to delete"
    )
    kept = sum(a.ledger_kept for a in doomed)
    if kept:
        total += (
            f"; {kept:,} ledger rows stay, marked pruned, for the "
            f"{sum(a.executions for a in doomed):,} stored executions they inserted (reconcile "
            "still matches them)"
        )
    lines.append(total)
    if rule.named is not None and rule.named == rule.live_group:
        lines.append(
            f"note: {rule.named} is ROI_GROUP_ID: its workers will start again from the first "
            "offsets (events already stored are duplicates)"
        )
    return "\n".join(lines) + "\n"


def render_prune_outcomes(outcomes: Sequence[PruneOutcome]) -> str:
    """What `--execute` did, a line per group, and how many groups went."""
    lines: list[str] = []
    for outcome in outcomes:
        if outcome.failed is not None:
            lines.append(f"failed: group {outcome.group}: {outcome.failed} (nothing of it changed)")
            continue
        if outcome.pruned is None:
            lines.append(f"kept: group {outcome.group}: {outcome.kept}")
            continue
        pruned = outcome.pruned
        line = (
            f"pruned: group {outcome.group}: {pruned.partitions:,} stored offsets and "
            f"{pruned.ledger_deleted:,} ledger rows deleted"
        )
        if pruned.ledger_kept:
            line += f", {pruned.ledger_kept:,} ledger rows kept (marked pruned)"
        lines.append(line)
    count = sum(outcome.pruned is not None for outcome in outcomes)
    lines.append(f"applied: {_groups(count)} pruned")
    return "\n".join(lines) + "\n"


def _groups(count: int) -> str:
    return f"{count} group{'' if count == 1 else 's'}"


def _time(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
