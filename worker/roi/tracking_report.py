"""Rendering of what the summary shows beside the window (month to date, each pattern's latest
snapshot status) and of `roi-worker report --snapshots`, in every format (docs/reports.md).

Pure, like worker.roi.report: figures come from worker.roi.month_to_date and
worker.roi.snapshots and are rounded here for display only; JSON is the report document's
models (worker.roi.report_document), with exact sums.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from .formatting import TENTH, Format, fraction_as_percent, number, percent, round_half_up, usd
from .month_to_date import MonthToDate
from .snapshots import Deltas, PatternSnapshots, Snapshot, SnapshotStatus
from .tracking import Tracking

SIX_PLACES: Final = Decimal("0.000001")
# Worst first: the order the summary lists statuses in.
SEVERITY: Final = (
    SnapshotStatus.OFF_TRACK,
    SnapshotStatus.AT_RISK,
    SnapshotStatus.INSUFFICIENT_DATA,
    SnapshotStatus.ON_TRACK,
)
STATUS_LABELS: Final = {
    SnapshotStatus.ON_TRACK: "ON TRACK",
    SnapshotStatus.AT_RISK: "AT RISK",
    SnapshotStatus.OFF_TRACK: "OFF TRACK",
    SnapshotStatus.INSUFFICIENT_DATA: "INSUFFICIENT DATA",
}
CSV_HEADER: Final = (
    "pattern_id",
    "day0",
    "label",
    "day",
    "first_day",
    "last_day",
    "complete",
    "status",
    "rating",
    "executions",
    "successful_executions",
    "success_rate",
    "cost_saved_usd",
    "investment_usd",
    "roi_percentage",
    "wilson_lower_bound",
    "success_rate_vs_baseline",
    "average_cost_saved_usd_vs_baseline",
    "average_cost_saved_percentage_vs_baseline",
    "success_rate_vs_previous",
    "average_cost_saved_usd_vs_previous",
)


# --------------------------------------------------------------------------- month to date


def month_to_date_headline(mtd: MonthToDate) -> str:
    """Seed 002's hero in one sentence: `Saved $1,247.32 this month (up 18.0 % on the same days
    of last month); projected month-end $2,100.00, annual $14,964.00`."""
    change = mtd.change_percentage
    if change is None:
        compared = "nothing saved on the same days of last month"
    else:
        direction = "up" if change >= 0 else "down"
        compared = f"{direction} {percent(abs(change))} on the same days of last month"
    return (
        f"Saved {usd(mtd.cost_saved_usd)} this month ({compared}); projected month-end "
        f"{usd(mtd.projected_month_end_usd)}, annual {usd(mtd.projected_annual_usd)}"
    )


def _month_to_date_details(mtd: MonthToDate) -> str:
    spans = mtd.spans
    return (
        f"{_minute(spans.current.start)} to {_minute(spans.now)} "
        f"({number(spans.elapsed_days, TENTH)} of {spans.days_in_month} days, "
        f"{mtd.executions:,} executions) against {_minute(spans.previous.start)} to "
        f"{_minute(spans.previous.end)} ({usd(mtd.previous_cost_saved_usd)}, "
        f"{mtd.previous_executions:,} executions); annual from the last 30 days' "
        f"{usd(mtd.trailing_cost_saved_usd)}"
    )


def _minute(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


# --------------------------------------------------------------------------- summary blocks


@dataclass(frozen=True, slots=True)
class _Listed:
    pattern_id: str
    status: SnapshotStatus | None
    day: int | None
    first_day: date | None
    last_day: date | None


def _listed(tracking: Tracking, pattern_ids: Iterable[str]) -> list[_Listed]:
    """Every pattern with its latest snapshot, worst status first, not yet at day 30 last."""
    found = []
    for pattern_id in pattern_ids:
        latest = tracking.latest.get(pattern_id)
        if latest is None:
            found.append(_Listed(pattern_id, None, None, None, None))
        else:
            found.append(
                _Listed(pattern_id, latest.status, latest.day, latest.first_day, latest.last_day)
            )
    order = {status: rank for rank, status in enumerate(SEVERITY)}
    return sorted(
        found, key=lambda p: (len(order) if p.status is None else order[p.status], p.pattern_id)
    )


def _counts(listed: list[_Listed]) -> str:
    parts = [f"{s.value} {sum(1 for p in listed if p.status is s):,}" for s in SEVERITY]
    young = sum(1 for p in listed if p.status is None)
    return ", ".join(parts) + f"; not yet at day 30: {young:,}"


def _status_line(entry: _Listed) -> str:
    if entry.status is None:
        return f"{entry.pattern_id}: not yet at day 30"
    return (
        f"{entry.pattern_id}: {STATUS_LABELS[entry.status]} "
        f"(day {entry.day}: {entry.first_day} to {entry.last_day})"
    )


def summary_text(tracking: Tracking, pattern_ids: Iterable[str], limit: int) -> list[str]:
    """The MONTH TO DATE and SNAPSHOTS blocks of the text summary."""
    mtd = tracking.month_to_date
    listed = _listed(tracking, pattern_ids)
    lines = [
        "MONTH TO DATE (UTC calendar month)",
        month_to_date_headline(mtd),
        _month_to_date_details(mtd),
        "",
        "SNAPSHOTS (latest 30-day window at day 30, 60 or 90 against the first 7 days)",
        _counts(listed),
    ]
    lines += [f"  {_status_line(entry)}" for entry in listed[:limit]]
    if len(listed) > limit:
        lines.append(f"  ... {len(listed) - limit:,} more: roi-worker report --snapshots")
    return lines


def summary_markdown(tracking: Tracking, pattern_ids: Iterable[str], limit: int) -> list[str]:
    """The Month to date and Snapshots sections of the Markdown summary."""
    mtd = tracking.month_to_date
    listed = _listed(tracking, pattern_ids)
    lines = [
        "## Month to date",
        "",
        f"**{month_to_date_headline(mtd)}**",
        "",
        f"UTC: {_month_to_date_details(mtd)}.",
        "",
        "## Snapshots",
        "",
        f"Latest 30-day window at day 30, 60 or 90 against the first 7 days: {_counts(listed)}.",
        "",
    ]
    lines += [f"- {_status_line(entry)}" for entry in listed[:limit]]
    if len(listed) > limit:
        lines.append(f"- ... {len(listed) - limit:,} more: `roi-worker report --snapshots`")
    return [*lines, ""]


# --------------------------------------------------------------------------- --snapshots


@dataclass(frozen=True, slots=True)
class SnapshotsView:
    """What `roi-worker report --snapshots` shows."""

    patterns: Mapping[str, PatternSnapshots]
    generated_at: datetime
    today: date
    at: date | None
    min_executions: int


def render_snapshots(view: SnapshotsView, output: Format) -> str:
    """The snapshots of every pattern in the view, as text ending in a newline."""
    if output == "json":
        from .report_document import (  # noqa: PLC0415  (pydantic models: JSON only)
            PatternSnapshotsReport,
            SnapshotsDocument,
        )

        document = SnapshotsDocument(
            report_version=1,
            generated_at=view.generated_at,
            today=view.today,
            at=view.at,
            min_executions=view.min_executions,
            patterns=[PatternSnapshotsReport.of(p) for p in view.patterns.values()],
        )
        return document.model_dump_json(indent=2) + "\n"
    if output == "csv":
        return _snapshots_csv(view)
    if output == "markdown":
        return _snapshots_markdown(view)
    return _snapshots_text(view)


def _title(found: PatternSnapshots) -> str:
    latest = found.latest
    status = "not yet at day 30" if latest is None or latest.status is None else latest.status
    return f"{found.pattern_id}: day 0 {found.day0}, latest status {status}"


def _snapshots_text(view: SnapshotsView) -> str:
    rule = "=" * 80
    lines = [
        rule,
        "PATTERN SNAPSHOTS",
        rule,
        f"Complete windows as of {view.today} (UTC); a window covers the days before its day N",
        "",
    ]
    for found in view.patterns.values():
        lines += [_title(found)]
        lines += [f"  {line}" for s in (found.baseline, *found.snapshots) for line in _lines(s)]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _snapshots_markdown(view: SnapshotsView) -> str:
    lines = ["# Pattern snapshots", "", f"Complete windows as of {view.today} (UTC).", ""]
    for found in view.patterns.values():
        lines += [f"## {_title(found)}", ""]
        lines += [
            "| Window | Days | Status | Executions | Success rate | Cost saved | ROI | "
            "vs baseline |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for shown in (found.baseline, *found.snapshots):
            lines.append(_markdown_row(shown))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _name(shown: Snapshot) -> str:
    if shown.label == "baseline":
        return "Baseline"
    return f"Day {shown.day}" + (" (--at)" if shown.label == "at" else "")


def _lines(shown: Snapshot) -> list[str]:
    head = f"{_name(shown)}: {shown.first_day} to {shown.last_day}"
    if not shown.complete or shown.totals is None:
        return [f"{head}: pending, complete on {shown.available_on}"]
    totals = shown.totals
    status = "" if shown.status is None else f", {STATUS_LABELS[shown.status]}"
    lines = [
        f"{head}{status}",
        f"  {totals.executions:,} executions, success rate "
        f"{fraction_as_percent(totals.success_rate)} (Wilson lower bound "
        f"{fraction_as_percent(shown.wilson_lower_bound)}), cost saved "
        f"{usd(totals.cost_saved_usd)}, ROI {percent(totals.roi_percentage, Decimal(1))}, "
        f"rating {shown.rating}",
    ]
    if shown.vs_baseline is not None:
        lines.append(f"  vs baseline: {_deltas(shown.vs_baseline)}")
    if shown.vs_previous is not None:
        lines.append(f"  vs {shown.previous_label}: {_deltas(shown.vs_previous)}")
    return lines


def _deltas(deltas: Deltas) -> str:
    parts = []
    if deltas.success_rate is not None:
        parts.append(f"success rate {_signed(100 * deltas.success_rate)} pp")
    if deltas.average_cost_saved_usd is not None:
        change = deltas.average_cost_saved_percentage
        relative = "" if change is None else f" ({_signed(change)} %)"
        parts.append(f"saved per execution {_signed_usd(deltas.average_cost_saved_usd)}{relative}")
    if deltas.executions_per_day is not None:
        parts.append(f"executions per day {_signed(deltas.executions_per_day)}")
    return ", ".join(parts) or "n/a"


def _markdown_row(shown: Snapshot) -> str:
    name = f"{_name(shown)} ({shown.first_day} to {shown.last_day})"
    if not shown.complete or shown.totals is None:
        return f"| {name} | {shown.days} | pending until {shown.available_on} | | | | | |"
    totals = shown.totals
    status = "" if shown.status is None else shown.status.value
    versus = "" if shown.vs_baseline is None else _deltas(shown.vs_baseline)
    return (
        f"| {name} | {shown.days} | {status} | {totals.executions:,} | "
        f"{fraction_as_percent(totals.success_rate)} | {usd(totals.cost_saved_usd)} | "
        f"{percent(totals.roi_percentage, Decimal(1))} | {versus} |"
    )


def _snapshots_csv(view: SnapshotsView) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for found in view.patterns.values():
        for shown in (found.baseline, *found.snapshots):
            writer.writerow(_csv_row(found, shown))
    return buffer.getvalue()


def _csv_row(found: PatternSnapshots, shown: Snapshot) -> list[str]:
    totals, base, before = shown.totals, shown.vs_baseline, shown.vs_previous

    def text(value: object) -> str:
        if value is None:
            return ""
        return format(value, "f") if isinstance(value, Decimal) else str(value)

    return [
        found.pattern_id,
        str(found.day0),
        shown.label,
        str(shown.day),
        str(shown.first_day),
        str(shown.last_day),
        str(shown.complete).lower(),
        text(shown.status),
        text(shown.rating),
        text(None if totals is None else totals.executions),
        text(None if totals is None else totals.successful_executions),
        text(_six(None if totals is None else totals.success_rate)),
        text(None if totals is None else totals.cost_saved_usd),
        text(None if totals is None else totals.investment_usd),
        text(_six(None if totals is None else totals.roi_percentage)),
        text(_six(shown.wilson_lower_bound)),
        text(_six(None if base is None else base.success_rate)),
        text(_six(None if base is None else base.average_cost_saved_usd)),
        text(_six(None if base is None else base.average_cost_saved_percentage)),
        text(_six(None if before is None else before.success_rate)),
        text(_six(None if before is None else before.average_cost_saved_usd)),
    ]


def _six(value: Decimal | None) -> Decimal | None:
    """Derived figures to six places, as in the report document (its PLACES)."""
    return None if value is None else round_half_up(value, SIX_PLACES)


def _signed(value: Decimal) -> str:
    text = number(value, TENTH)
    return text if text.startswith("-") else f"+{text}"


def _signed_usd(amount: Decimal) -> str:
    text = usd(amount)
    return text if text.startswith("-") else f"+{text}"
