"""`roi-worker rebuild-summaries` and `roi-worker verify`: the summary tables against a full
recompute from the stored executions (worker.roi.summaries)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .exits import EXIT_FAILED, EXIT_OK


def register(commands: Any) -> None:
    """Adds `rebuild-summaries` and `verify` to the `roi-worker` subcommands."""
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


def _rebuild(args: argparse.Namespace) -> int:
    del args
    from ..db.connect import connect
    from ..roi.summaries import rebuild
    from ..settings import load_settings

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
    from ..db.connect import connect
    from ..roi.summaries import find_drift
    from ..settings import load_settings

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
