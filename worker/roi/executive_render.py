"""The executive summary (worker.roi.executive) as text, Markdown, CSV and JSON, and the wording
its PDF (worker.roi.executive_pdf) shares with them.

Pure rendering of the summary document: JSON is the document itself and CSV holds its values as
they are (exact decimal strings); the forms for people show those values rounded half up by
worker.roi.formatting, so every figure on the page is the JSON's, rounded for display only.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal

from .executive import ExecutiveSummary, ListedPattern
from .formatting import TENTH, fraction_as_percent, number, percent, usd

# The forms `roi-worker report --executive` writes besides PDF (binary, worker.roi.executive_pdf).
TextFormat = Literal["text", "json", "csv", "markdown"]
TITLE: Final = "Automation ROI summary"
METHODOLOGY: Final = "docs/roi-methodology.md"
CSV_HEADER: Final = ("block", "figure", "value")
RULE: Final = "=" * 80


@dataclass(frozen=True, slots=True)
class Line:
    """One figure as people read it: `Projected annual: $14,964.00`."""

    label: str
    value: str


@dataclass(frozen=True, slots=True)
class PatternRow:
    """A listed pattern's cells, shown as they are in every form for people."""

    rank: str
    pattern_id: str
    rating: str
    success_rate: str
    roi: str
    cost_saved: str
    recommendation: str


@dataclass(frozen=True, slots=True)
class Ranking:
    """The top performers or the underperformers, or why there are none."""

    title: str
    rows: list[PatternRow]
    empty: str


def period_line(summary: ExecutiveSummary) -> str:
    """`December 2026, month to date: 2026-12-01 00:00 to 2026-12-06 14:30 UTC`."""
    period = summary.period
    return f"{period.label}, month to date: {_minute(period.start)} to {_minute(period.end)} UTC"


def generated_line(summary: ExecutiveSummary) -> str:
    return f"Generated {_minute(summary.generated_at)} UTC by roi-worker"


def headline(summary: ExecutiveSummary) -> str:
    """The hero: `$1,247.32 saved this month`."""
    return f"{usd(summary.cost_savings.cost_saved_usd)} saved this month"


def savings_lines(summary: ExecutiveSummary) -> list[Line]:
    """Seed 002's cost savings block: month to date, change, projections."""
    savings = summary.cost_savings
    return [
        Line("Saved this month (net)", usd(savings.cost_saved_usd)),
        Line("Change vs the same days of last month", _change(summary)),
        Line("Projected month-end", usd(savings.projected_month_end_usd)),
        Line("Projected annual (last 30 days x 365 / 30)", usd(savings.projected_annual_usd)),
    ]


def _change(summary: ExecutiveSummary) -> str:
    savings = summary.cost_savings
    before = usd(savings.previous_cost_saved_usd)
    change = savings.change_percentage
    if change is None:
        return f"n/a (saved {before} then)"
    direction = "up" if change >= 0 else "down"
    return f"{direction} {percent(abs(change))} (saved {before} then)"


def productivity_lines(summary: ExecutiveSummary) -> list[Line]:
    """Seed 002's productivity block: executions, hours saved, success rate."""
    done = summary.productivity
    return [
        Line("Executions", f"{done.executions:,} ({done.successful_executions:,} successful)"),
        Line("Hours saved (net)", f"{number(done.hours_saved, TENTH)} hours"),
        Line("Success rate (per execution)", fraction_as_percent(done.success_rate)),
        Line("Patterns run", f"{done.patterns:,}"),
    ]


def rankings(summary: ExecutiveSummary) -> list[Ranking]:
    """The best and the worst patterns, as the report ranks them."""
    needs = summary.min_executions
    return [
        Ranking(
            "Top performers (by ROI)",
            [_row(p) for p in summary.top_performers],
            "None: no pattern is rated acceptable or better this month (a rating needs "
            f"{needs} executions in the period).",
        ),
        Ranking(
            "Underperformers (needs attention)",
            [_row(p) for p in summary.underperformers],
            "None: no pattern is rated poor or failed this month.",
        ),
    ]


def _row(listed: ListedPattern) -> PatternRow:
    return PatternRow(
        rank=str(listed.rank),
        pattern_id=listed.pattern_id,
        rating=listed.rating.value,
        success_rate=fraction_as_percent(listed.success_rate),
        roi=_roi(listed),
        cost_saved=usd(listed.cost_saved_usd),
        recommendation=listed.recommendation,
    )


def _roi(listed: ListedPattern) -> str:
    if listed.roi_percentage is not None:
        return percent(listed.roi_percentage, Decimal(1))
    return "unbounded" if listed.cost_saved_usd > 0 else "n/a"


def footnote(summary: ExecutiveSummary) -> str:
    return (
        "Net savings: what successful runs saved against their estimates minus what failed "
        f"runs cost. Ratings need {summary.min_executions} executions in the period. Every "
        f"figure is defined in {METHODOLOGY}."
    )


def _minute(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


# --------------------------------------------------------------------------- the forms


def render(summary: ExecutiveSummary, output: TextFormat) -> str:
    """The summary in a text form, ending in a newline."""
    if output == "json":
        return summary.model_dump_json(indent=2) + "\n"
    if output == "csv":
        return _csv(summary)
    if output == "markdown":
        return _markdown(summary)
    return _text(summary)


def _text(summary: ExecutiveSummary) -> str:
    lines = [RULE, TITLE.upper(), RULE, period_line(summary), generated_line(summary), ""]
    lines += ["COST SAVINGS", headline(summary)]
    lines += [f"{line.label}: {line.value}" for line in savings_lines(summary)]
    lines += ["", "PRODUCTIVITY"]
    lines += [f"{line.label}: {line.value}" for line in productivity_lines(summary)]
    for ranking in rankings(summary):
        lines += ["", ranking.title.upper()]
        if not ranking.rows:
            lines.append(ranking.empty)
        for row in ranking.rows:
            lines += [
                f"{row.rank}. {row.pattern_id}: {row.rating}, ROI {row.roi}, saved "
                f"{row.cost_saved}, success rate {row.success_rate}",
                f"   Recommendation: {row.recommendation}",
            ]
    lines += ["", footnote(summary)]
    return "\n".join(lines) + "\n"


def _markdown(summary: ExecutiveSummary) -> str:
    lines = [f"# {TITLE}", "", f"{period_line(summary)}. {generated_line(summary)}.", ""]
    lines += ["## Cost savings", "", f"**{headline(summary)}**", ""]
    lines += [f"- {line.label}: {line.value}" for line in savings_lines(summary)]
    lines += ["", "## Productivity", ""]
    lines += [f"- {line.label}: {line.value}" for line in productivity_lines(summary)]
    for ranking in rankings(summary):
        lines += ["", f"## {ranking.title}", ""]
        if not ranking.rows:
            lines.append(ranking.empty)
            continue
        lines += [
            "| # | Pattern | Rating | Success rate | ROI | Net saved | Recommendation |",
            "|---:|---|---|---:|---:|---:|---|",
        ]
        lines += [
            f"| {r.rank} | `{r.pattern_id}` | {r.rating} | {r.success_rate} | {r.roi} | "
            f"{r.cost_saved} | {r.recommendation} |"
            for r in ranking.rows
        ]
    lines += ["", footnote(summary)]
    return "\n".join(lines) + "\n"


def _csv(summary: ExecutiveSummary) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(summary))
    return buffer.getvalue()


def csv_rows(summary: ExecutiveSummary) -> Iterator[tuple[str, str, str]]:
    """(block, figure, value) for every value of the JSON form, as it writes it (decimals as
    exact strings, empty for null): a block per object, `top_performers.1` per listed pattern."""
    for key, value in summary.model_dump(mode="json").items():
        if isinstance(value, dict):
            yield from ((key, name, _cell(v)) for name, v in value.items())
        elif isinstance(value, list):
            for item in value:
                block = f"{key}.{item['rank']}"
                yield from ((block, name, _cell(v)) for name, v in item.items() if name != "rank")
        else:
            yield ("summary", key, _cell(value))


def _cell(value: object) -> str:
    return "" if value is None else str(value)
