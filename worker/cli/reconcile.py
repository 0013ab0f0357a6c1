"""`roi-worker reconcile`: is every stored offset accounted for (docs/operations.md)?

Arguments and output only; the logic is worker.ops.reconcile, loaded when the command runs.
Failures propagate to worker.cli.main.main: one line, exit 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from itertools import groupby
from typing import TYPE_CHECKING, Any

from ..roi.formatting import table
from .args import group_id_argument, topic_argument
from .exits import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from ..ops.reconcile import PartitionAudit, Reconciliation


def register(commands: Any) -> None:
    """Adds `reconcile` to the `roi-worker` subcommands."""
    reconcile_cmd = commands.add_parser(
        "reconcile",
        help="prove from the offset ledger that every stored offset is accounted for",
        description="Per group, topic and partition, from the offset ledger in PostgreSQL (one "
        "snapshot; Kafka is not needed): its ranges tile from the start to the stored offset "
        "with no gap or overlap (resets and replays explain the jumps they made), each batch's "
        "counts (inserted, duplicates, conflicts, refused, expired, dead-lettered, skipped) add "
        "up to its size, and the inserted rows still stored match their batches' source "
        "offsets. Offsets stored before the ledger existed are listed as unaudited. Exit 0 when "
        "all is accounted for, 1 naming each gap, overlap and mismatch.",
    )
    reconcile_cmd.add_argument(
        "--group",
        type=group_id_argument,
        default=None,
        help="only this group (default: every group). With it, stored rows that no batch "
        "inserted are not looked for: they belong to no group",
    )
    reconcile_cmd.add_argument(
        "--topic", type=topic_argument, default=None, help="only this topic (default: every topic)"
    )
    reconcile_cmd.set_defaults(handler=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    from ..db.connect import connect
    from ..ops.reconcile import reconcile
    from ..settings import load_settings

    settings = load_settings()
    with connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        result = reconcile(conn, args.group, args.topic)
    if not result.partitions and not result.unattributed:
        scope = " ".join(
            f"{name} {value}"
            for name, value in (("group", args.group), ("topic", args.topic))
            if value is not None
        )
        if scope:
            print(f"nothing stored for {scope}: no offsets and no ledger rows")
            return EXIT_FAILED
        print("nothing stored yet: no offsets to account for")
        return EXIT_OK
    sys.stdout.write(render(result))
    return EXIT_OK if result.ok else EXIT_FAILED


def render(result: Reconciliation) -> str:
    """The per-partition tables (one per group and topic), the unaudited ranges and moves,
    every problem, and a verdict."""
    header = _header()
    lines: list[str] = []
    for (group, topic), audits in groupby(result.partitions, key=lambda a: (a.group, a.topic)):
        if lines:
            lines.append("")
        lines.append(f"group {group} on topic {topic}")
        lines += table(
            header, [_row(audit) for audit in audits], "<" + ">" * (len(header) - 2) + "<"
        )
    notes = [note for audit in result.partitions for note in audit.notes]
    problems = result.problems
    if notes or problems:
        lines.append("")
    lines += notes
    lines += [str(problem) for problem in problems]
    lines.append("")
    lines.append(_verdict(result, problems))
    return "\n".join(lines) + "\n"


def _header() -> tuple[str, ...]:
    """The columns of a table: one per count of the ledger (worker.db.ledger, which needs
    psycopg, hence read here and not when the parser is built)."""
    from ..db.ledger import COUNTS

    return (
        "partition",
        "start",
        "stored",
        "batches",
        *(name.replace("_", "-") for name in COUNTS),
        "unaudited",
        "moves",
        "status",
    )


def _row(audit: PartitionAudit) -> list[str]:
    return [
        str(audit.partition),
        _offset(audit.start),
        _offset(audit.stored),
        str(audit.batches),
        *(str(count) for count in audit.counts),
        str(audit.unaudited),
        str(audit.moves),
        audit.status,
    ]


def _offset(offset: int | None) -> str:
    return "-" if offset is None else str(offset)


def _verdict(result: Reconciliation, problems: Sequence[object]) -> str:
    partitions = len(result.partitions)
    noun = "partition" if partitions == 1 else "partitions"
    unaudited = sum(audit.unaudited for audit in result.partitions)
    if problems:
        failing = sum(audit.status != "ok" for audit in result.partitions)
        return (
            f"NOT accounted for: {len(problems)} problem{'s' if len(problems) != 1 else ''} in "
            f"{failing} of {partitions} {noun} (docs/operations.md, 'Reconcile')"
        )
    text = f"every offset accounted for: {partitions} {noun}"
    if unaudited:
        text += f"; {unaudited:,} offsets stored without a ledger are unaudited"
    return text
