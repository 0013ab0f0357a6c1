"""`roi-worker report`: per-pattern ROI from the summaries in PostgreSQL (docs/reports.md).

What is reported and how it is rendered is worker.roi.report's; this module picks the selection
from the arguments, loads the analytics and prints. It needs psycopg and the analytics, never
Kafka or the web framework.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..roi.formatting import FORMATS, Format
from .args import positive_int
from .exits import EXIT_FAILED, EXIT_OK, UsageError, fail

if TYPE_CHECKING:
    from ..roi.executive_render import TextFormat
    from ..roi.methodology import Window
    from ..roi.report_document import Selection

DEFAULT_REPORT = "roi_report.md"


def register(commands: Any) -> None:
    """Adds `report` to the `roi-worker` subcommands."""
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
        "--executive",
        dest="selection",
        action="store_const",
        const="executive",
        help="seed 002's one-page executive summary of this UTC month to date: savings and "
        "projections, productivity, best and worst patterns (--format pdf needs --output)",
    )
    selection.add_argument(
        "--report",
        dest="selection",
        action="store_const",
        const="full",
        help="write the full Markdown report to --output",
    )
    report_cmd.add_argument(
        "--snapshots",
        action="store_true",
        help="the baseline (first 7 days) and the 30-day snapshots at day 30, 60 and 90 of every "
        "pattern, or of --pattern-id, each with its status (docs/roi-methodology.md)",
    )
    report_cmd.add_argument(
        "--at",
        metavar="DATE",
        help="with --snapshots: also the snapshot of the 30 days before DATE (YYYY-MM-DD, UTC, "
        "today at the latest)",
    )
    report_cmd.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help=f"where --report writes (default {DEFAULT_REPORT}); with --executive, the file it "
        "writes instead of printing (needed for pdf)",
    )
    report_cmd.add_argument(
        "--limit", type=positive_int, default=10, metavar="N", help="patterns per list (default 10)"
    )
    report_cmd.add_argument(
        "--since",
        metavar="WINDOW",
        help="only executions since: 7d, 30d, 90d (today and the N-1 UTC days before) or a "
        "date YYYY-MM-DD; compared with the previous window of the same length (default: all "
        "time)",
    )
    report_cmd.add_argument(
        "--format", choices=(*FORMATS, "pdf"), default=None, help="default text; pdf: --executive"
    )
    report_cmd.add_argument(
        "--min-executions",
        type=positive_int,
        default=None,
        metavar="N",
        help="executions a pattern needs to be rated (default ROI_MIN_EXECUTIONS, 10)",
    )
    report_cmd.set_defaults(handler=_report, selection=None)


def _report(args: argparse.Namespace) -> int:
    from ..db.connect import connect
    from ..roi.analytics import pattern_exists, read_analytics, snapshot
    from ..roi.methodology import Window
    from ..roi.report import Request, full_report, render
    from ..roi.tracking import read_tracking
    from ..settings import load_settings

    _pdf_goes_with_executive(args)
    if args.snapshots or args.selection == "executive":
        return _snapshots(args) if args.snapshots else _executive(args)
    if args.at is not None:
        raise UsageError("--at goes with --snapshots")
    selection: str = "pattern" if args.pattern_id is not None else args.selection or "summary"
    if args.output is not None and selection != "full":
        raise UsageError("--output goes with --report or --executive")
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
            return fail(
                f"no pattern {args.pattern_id!r}: no execution of it is stored", EXIT_FAILED
            )
        with snapshot(conn) as cur:  # one consistent state for the figures and tracking
            analytics = read_analytics(
                cur,
                window,
                min_executions,
                now,
                pattern_id=args.pattern_id,
                # The summary's text does not show them, and they are the one costly figure.
                percentiles=selection in ("pattern", "full") or args.format in ("json", "csv"),
            )
            tracking = None
            if selection == "summary" and args.format != "csv":
                tracking = read_tracking(cur, now, min_executions)
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
        cast("Selection", selection), args.format or "text", args.limit, args.pattern_id
    )
    if not analytics.tracked and selection != "pattern":
        message = f"no executions stored {_scope(window)} yet: nothing to report"
        if request.format in ("json", "csv"):  # scripts still get a well-formed, empty answer
            print(message, file=sys.stderr)
        else:
            print(message)
            return EXIT_OK
    sys.stdout.write(render(analytics, request, tracking=tracking))
    return EXIT_OK


def _snapshots(args: argparse.Namespace) -> int:
    """`report --snapshots [--pattern-id ID] [--at DATE]`: every pattern's, or one's."""
    from ..db.connect import connect
    from ..roi.analytics import pattern_exists, snapshot
    from ..roi.snapshots import load_snapshots
    from ..roi.tracking_report import SnapshotsView, render_snapshots
    from ..settings import load_settings

    if args.selection is not None or args.output is not None or args.since is not None:
        raise UsageError("--snapshots goes with --pattern-id, --at, --format, --min-executions")
    settings = load_settings()
    min_executions = args.min_executions or settings.min_executions
    now = datetime.now(UTC)
    at = _at_date(args.at, now.date())
    with connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        if args.pattern_id is not None and not (
            _is_pattern_id(args.pattern_id) and pattern_exists(conn, args.pattern_id)
        ):
            return fail(
                f"no pattern {args.pattern_id!r}: no execution of it is stored", EXIT_FAILED
            )
        with snapshot(conn) as cur:
            found = load_snapshots(
                cur,
                now.date(),
                min_executions,
                pattern_ids=None if args.pattern_id is None else [args.pattern_id],
                at=at,
            )
    view = SnapshotsView(found, now, now.date(), at, min_executions)
    output: Format = args.format or "text"
    if not found:
        message = "no executions stored yet: no snapshots to report"
        if output not in ("json", "csv"):
            print(message)
            return EXIT_OK
        print(message, file=sys.stderr)  # scripts still get a well-formed, empty answer
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")
    sys.stdout.write(render_snapshots(view, output))
    return EXIT_OK


def _executive(args: argparse.Namespace) -> int:
    """`report --executive [--format F] [--output FILE]`: seed 002's one page (docs/reports.md,
    "Executive summary"), printed, or written to FILE; a PDF only to a file."""
    from ..db.connect import connect
    from ..roi.executive import load_summary
    from ..roi.executive_render import render
    from ..settings import load_settings

    if args.since is not None or args.at is not None:
        raise UsageError(
            "--executive covers this UTC month to date: it takes --format, --output and "
            "--min-executions"
        )
    output: str = args.format or "text"
    path: Path | None = args.output
    if output == "pdf" and path is None:
        raise UsageError("--format pdf needs --output FILE")
    settings = load_settings()
    min_executions = args.min_executions or settings.min_executions
    with connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        summary = load_summary(conn, "month", datetime.now(UTC), min_executions)
    if path is None:  # not a PDF (checked above)
        sys.stdout.write(render(summary, cast("TextFormat", output)))
        return EXIT_OK
    if output == "pdf":
        from ..roi.executive_pdf import render_pdf

        path.write_bytes(render_pdf(summary))
    else:
        path.write_text(render(summary, cast("TextFormat", output)), encoding="utf-8")
    print(f"wrote {path}: executive summary of {summary.period.label} ({output})")
    return EXIT_OK


def _pdf_goes_with_executive(args: argparse.Namespace) -> None:
    if args.format == "pdf" and args.selection != "executive":
        raise UsageError("--format pdf goes with --executive")


def _at_date(text: str | None, today: date) -> date | None:
    """--at's date: YYYY-MM-DD, not after today (UTC); UsageError otherwise."""
    from ..roi.snapshots import parse_at

    try:
        return None if text is None else parse_at(text, today)
    except ValueError as exc:
        raise UsageError(f"--at: {exc}") from None


def _is_pattern_id(text: str) -> bool:
    """Whether `text` could name a stored pattern at all (event contract v1)."""
    from ..contract.event import PATTERN_ID

    return PATTERN_ID.fullmatch(text) is not None


def _scope(window: Window) -> str:
    return "over all time" if window.since is None else f"since {window.since}"
