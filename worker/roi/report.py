"""`roi-worker report`: the analytics as text, JSON, CSV or Markdown.

Pure rendering: everything shown comes from an `Analytics` (roi/analytics.py) and is rounded here,
for display only. JSON and CSV carry the exact sums of the report document
(worker.roi.report_document); text and Markdown are for people.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from ..contract.outcome import OUTCOMES
from .analytics import Analytics, PatternAnalytics
from .formatting import TENTH, Format, duration, fraction_as_percent, number, percent, usd
from .methodology import COST_ANOMALY_FACTOR, Rating, Totals
from .tracking_report import summary_markdown, summary_text

if TYPE_CHECKING:
    from .report_document import PatternReport, Selection
    from .tracking import Tracking

# The JSON document's pydantic models (report_document) are built when first imported, which
# takes a third of `roi-worker report`'s start: only JSON and CSV load them.

RULE: Final = "=" * 80
QUALITY_STEP: Final = Decimal("0.001")  # quality scores are shown on their 0..1 scale
METHODOLOGY: Final = "docs/roi-methodology.md"


@dataclass(frozen=True, slots=True)
class Request:
    """What to report: a selection of patterns, how many at most, and in which format."""

    selection: Selection
    format: Format = "text"
    limit: int = 10
    pattern_id: str | None = None


def selected(analytics: Analytics, request: Request) -> list[PatternAnalytics]:
    """The patterns a request is about, in the order it shows them.

    Raises LookupError for a pattern the analytics do not hold (check `pattern_exists` first).
    """
    if request.selection == "pattern":
        found = analytics.find(request.pattern_id or "")
        if found is None:
            raise LookupError(f"pattern {request.pattern_id!r} is not in these analytics")
        return [found]
    if request.selection == "top_performers":
        return analytics.top_performers(request.limit)
    if request.selection == "underperformers":
        return analytics.underperformers(request.limit)
    return list(analytics.patterns)


def render(analytics: Analytics, request: Request, *, tracking: Tracking | None = None) -> str:
    """The report as text ending in a newline. Raises LookupError like `selected`.

    `tracking` (month to date, latest snapshots) is shown by the summary, after its overall
    metrics, in text, JSON and Markdown; other selections and CSV leave it out."""
    patterns = selected(analytics, request)
    shown = tracking if request.selection == "summary" else None
    if request.format == "json":
        from .report_document import build_document  # noqa: PLC0415  (see the imports)

        document = build_document(
            analytics, request.selection, patterns, request.limit, tracking=shown
        )
        return document.model_dump_json(indent=2) + "\n"
    if request.format == "csv":
        return _csv(analytics, patterns, request.limit)
    ids = [p.pattern_id for p in analytics.patterns]
    if request.format == "markdown":
        text = _markdown(analytics, request, patterns)
        return text if shown is None else _after(text, summary_markdown(shown, ids, request.limit))
    text = _text(analytics, request, patterns)
    return text if shown is None else _after(text, summary_text(shown, ids, request.limit))


def _after(text: str, lines: list[str]) -> str:
    """`text` (ending in a newline), a blank line, then `lines`, ending in one newline."""
    return text + "\n" + "\n".join(lines).rstrip() + "\n"


def full_report(analytics: Analytics, limit: int) -> str:
    """The complete Markdown report of `--report`: every section, every pattern."""
    lines = ["# Pattern ROI report", "", *_md_preamble(analytics)]
    lines += _md_overall(analytics)
    lines += _md_ranking("Top performers (by ROI)", analytics.top_performers(limit), analytics)
    lines += _md_ranking(
        "Underperformers (needs attention)", analytics.underperformers(limit), analytics
    )
    lines += _md_all_patterns(analytics)
    lines += _md_flags(analytics)
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- text


def _text(analytics: Analytics, request: Request, patterns: list[PatternAnalytics]) -> str:
    if request.selection == "pattern":
        return "\n".join(_text_pattern(analytics, patterns[0])) + "\n"
    lines = [RULE, "PATTERN ROI SUMMARY", RULE, *_text_window(analytics), ""]
    if request.selection in ("summary", "top_performers"):
        lines += _text_section(
            "TOP PERFORMERS (by ROI)",
            analytics.top_performers(request.limit),
            analytics,
            "None: no pattern is rated acceptable or better (a rating needs "
            f"{analytics.min_executions} executions in the window).",
        )
    if request.selection in ("summary", "underperformers"):
        lines += _text_section(
            "UNDERPERFORMERS (needs attention)",
            analytics.underperformers(request.limit),
            analytics,
            "None: no pattern is rated poor or failed.",
        )
    if request.selection == "summary":
        lines += _text_overall(analytics)
    return "\n".join(lines).rstrip() + "\n"


def _text_window(analytics: Analytics) -> list[str]:
    window, previous = analytics.window, analytics.window.previous
    if window.since is None or previous is None:
        return []
    return [
        f"Window: {window.since} to now ({window.days} UTC days), compared with "
        f"{previous.since} to {previous.until}"
    ]


def _text_section(
    title: str, patterns: list[PatternAnalytics], analytics: Analytics, empty: str
) -> list[str]:
    """A titled, ranked list of pattern blocks, a blank line after each (seed 000's layout)."""
    lines = [title]
    if not patterns:
        lines += [empty, ""]
    for rank, pattern in enumerate(patterns, start=1):
        lines += [*_text_block(rank, pattern, analytics), ""]
    return lines


def _text_block(rank: int, pattern: PatternAnalytics, analytics: Analytics) -> list[str]:
    totals = pattern.totals
    lines = [
        f"{rank}. Pattern: {pattern.pattern_id}",
        f"   Executions: {_executions(totals)}",
        f"   Time saved: {_time_saved(totals.time_saved_seconds)}",
        f"   Cost saved: {_cost_saved(totals.cost_saved_usd)}",
        f"   ROI: {_roi(totals)}",
        f"   Rating: {pattern.rating.label}",
    ]
    if pattern.rating in (Rating.POOR, Rating.FAILED):
        lines.append(f"   Recommendation: {pattern.rating.recommendation}")
    flags = _flags(totals)
    if flags:
        lines.append(f"   Flags: {flags}")
    if pattern.previous is not None:
        lines.append(f"   {_change_label(analytics)}: {_change(totals, pattern.previous)}")
    return lines


def _text_overall(analytics: Analytics) -> list[str]:
    overall = analytics.overall
    lines = [
        "OVERALL METRICS",
        f"Total patterns tracked: {len(analytics.tracked):,}",
        f"Total executions: {overall.executions:,}",
        f"Total time saved: {_time_saved(overall.time_saved_seconds)}",
        f"Total cost saved: {_cost_saved(overall.cost_saved_usd)}",
        f"Average success rate: {_rate(overall.success_rate)}",
        f"Executions with negative savings: {overall.negative_savings_executions:,}"
        + _share(overall.negative_savings_executions, overall.executions),
        f"Cost anomalies (actual cost > {COST_ANOMALY_FACTOR}x estimate): "
        f"{overall.cost_anomaly_executions:,}",
        f"Outcomes: {_outcomes(overall)}",
        f"Quality: {_quality(overall)}",
        f"Tokens saved: {_tokens_saved(overall)}",
    ]
    previous = analytics.overall_previous
    if previous is not None:
        lines.append(f"{_change_label(analytics)}: {_change(overall, previous)}")
    return lines


def _text_pattern(analytics: Analytics, pattern: PatternAnalytics) -> list[str]:
    window = analytics.window
    scope = "all time" if window.since is None else f"{window.since} to now ({window.days} days)"
    return [
        RULE,
        f"PATTERN ROI REPORT: {pattern.pattern_id}",
        RULE,
        f"Window: {scope}",
        _span(pattern),
        "",
        *_pattern_figures(analytics, pattern),
    ]


def _span(pattern: PatternAnalytics) -> str:
    return (
        f"First execution: {_when(pattern.first_executed_at)}; "
        f"last: {_when(pattern.last_executed_at)}"
    )


def _pattern_figures(analytics: Analytics, pattern: PatternAnalytics) -> list[str]:
    """Every figure of one pattern, a line each: the body of the single-pattern view."""
    totals = pattern.totals
    lines = [
        f"Executions: {_executions(totals)}",
        f"Success rate, 95% lower bound (Wilson): {_rate(pattern.wilson_lower_bound)}",
        f"Time saved: {_time_saved(totals.time_saved_seconds)}",
        f"Cost saved: {_cost_saved(totals.cost_saved_usd)}",
        f"Investment (actual cost): {usd(totals.investment_usd)}",
        f"Average saved per execution: {_average(totals)}",
        f"ROI: {_roi(totals)}",
        f"Execution time: {_percentiles(pattern)}",
        f"Flags: {_flags(totals) or 'none'}",
        f"Outcomes: {_outcomes(totals)}",
        f"Quality: {_quality(totals)}",
        f"Tokens saved: {_tokens_saved(totals)}",
        f"Trend: {_trend(pattern)}",
        f"Quality trend: {_quality_trend(analytics, pattern)}",
    ]
    if pattern.previous is not None:
        lines.append(f"{_change_label(analytics)}: {_change(totals, pattern.previous)}")
    lines += [
        f"Rating: {pattern.rating.label}",
        f"Recommendation: {pattern.rating.recommendation}",
    ]
    return lines


# --------------------------------------------------------------------------- csv

CSV_COLUMNS: Final = (
    "pattern_id",
    "executions",
    "successful_executions",
    "success_rate",
    "wilson_lower_bound",
    "time_saved_seconds",
    "cost_saved_usd",
    "investment_usd",
    "average_time_saved_seconds",
    "average_cost_saved_usd",
    "roi_percentage",
    "rating",
    "recommendation",
    "trend",
    "success_rate_change",
    "success_rate_change_margin",
    "negative_savings_executions",
    "cost_anomaly_executions",
    "execution_time_p50_seconds",
    "execution_time_p95_seconds",
    "execution_time_p99_seconds",
    "previous_executions",
    "previous_cost_saved_usd",
    "previous_roi_percentage",
    "first_executed_at",
    "last_executed_at",
    *(f"outcome_{outcome}_executions" for outcome in OUTCOMES),
    "quality_scored_executions",
    "quality_score_mean",
    "quality_trend",
    "quality_score_change",
    "quality_score_change_margin",
    "token_measured_executions",
    "tokens_saved",
)


def _csv(analytics: Analytics, patterns: list[PatternAnalytics], limit: int) -> str:
    from .report_document import build_document  # noqa: PLC0415  (see the imports)

    document = build_document(analytics, "summary", patterns, limit)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in document.patterns:
        writer.writerow(_csv_row(entry))
    return out.getvalue()


def _csv_row(entry: PatternReport) -> list[str]:
    row: dict[str, Any] = entry.model_dump(mode="json")
    timing = row.pop("execution_time_percentiles") or {}
    previous = row.pop("previous") or {}
    for name in ("p50", "p95", "p99"):
        row[f"execution_time_{name}_seconds"] = timing.get(name)
    row["previous_executions"] = previous.get("executions")
    row["previous_cost_saved_usd"] = previous.get("cost_saved_usd")
    row["previous_roi_percentage"] = previous.get("roi_percentage")
    return ["" if row[column] is None else str(row[column]) for column in CSV_COLUMNS]


# --------------------------------------------------------------------------- markdown


def _markdown(analytics: Analytics, request: Request, patterns: list[PatternAnalytics]) -> str:
    if request.selection == "pattern":
        lines = [f"# Pattern ROI report: {patterns[0].pattern_id}", ""]
        lines += _md_preamble(analytics) + _md_pattern(patterns[0], analytics)
    elif request.selection == "top_performers":
        lines = _md_ranking("Top performers (by ROI)", patterns, analytics)
    elif request.selection == "underperformers":
        lines = _md_ranking("Underperformers (needs attention)", patterns, analytics)
    else:
        lines = ["# Pattern ROI summary", "", *_md_preamble(analytics)]
        lines += _md_ranking(
            "Top performers (by ROI)", analytics.top_performers(request.limit), analytics
        )
        lines += _md_ranking(
            "Underperformers (needs attention)",
            analytics.underperformers(request.limit),
            analytics,
        )
        lines += _md_overall(analytics)
    return "\n".join(lines).rstrip() + "\n"


def _md_preamble(analytics: Analytics) -> list[str]:
    window, previous = analytics.window, analytics.window.previous
    scope = "all time"
    if window.since is not None and previous is not None:
        scope = (
            f"{window.since} to now ({window.days} UTC days), compared with the previous "
            f"{window.days} days ({previous.since} to {previous.until})"
        )
    return [
        f"Generated {analytics.generated_at:%Y-%m-%d %H:%M} UTC. Window: {scope}. Ratings need "
        f"at least {analytics.min_executions} executions; every figure is defined in "
        f"[the ROI methodology]({METHODOLOGY}).",
        "",
    ]


def _md_table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _md_overall(analytics: Analytics) -> list[str]:
    overall, previous = analytics.overall, analytics.overall_previous
    rows: list[tuple[str, Callable[[Totals], str]]] = [
        ("Executions", lambda t: f"{t.executions:,}"),
        ("Success rate (per execution)", lambda t: _rate(t.success_rate)),
        ("Time saved", lambda t: duration(t.time_saved_seconds)),
        ("Cost saved", lambda t: usd(t.cost_saved_usd)),
        ("Investment (actual cost)", lambda t: usd(t.investment_usd)),
        ("ROI", _roi),
        ("Executions with negative savings", lambda t: f"{t.negative_savings_executions:,}"),
        (
            f"Cost anomalies (> {COST_ANOMALY_FACTOR}x estimate)",
            lambda t: f"{t.cost_anomaly_executions:,}",
        ),
        ("Outcomes", _outcomes),
        ("Quality score", _quality),
        ("Tokens saved", _tokens_saved),
    ]
    lines = ["## Overall", "", f"Patterns tracked: {len(analytics.tracked):,}", ""]
    if previous is None:
        return lines + _md_table(("Figure", "All time"), ((n, f(overall)) for n, f in rows))
    return lines + _md_table(
        ("Figure", "This window", "Previous window"),
        ((n, f(overall), f(previous)) for n, f in rows),
    )


def _md_ranking(title: str, patterns: list[PatternAnalytics], analytics: Analytics) -> list[str]:
    lines = [f"## {title}", ""]
    if not patterns:
        return [*lines, "None.", ""]
    header = ["#", "Pattern", "Executions", "Success rate", "Time saved", "Cost saved", "ROI"]
    header += ["Rating", "Recommendation"]
    if analytics.window.previous is not None:
        header.append(_change_label(analytics))
    rows = []
    for rank, p in enumerate(patterns, start=1):
        t = p.totals
        row = [str(rank), f"`{p.pattern_id}`", f"{t.executions:,}"]
        row += [_rate(t.success_rate), duration(t.time_saved_seconds)]
        row += [usd(t.cost_saved_usd), _roi(t), p.rating.label, p.rating.recommendation]
        if p.previous is not None:
            row.append(_change(t, p.previous))
        rows.append(row)
    return lines + _md_table(header, rows)


def _md_all_patterns(analytics: Analytics) -> list[str]:
    header = (
        *("Pattern", "Executions", "Success rate", "Wilson 95% lower bound", "Time saved"),
        *("Cost saved", "ROI", "Rating", "Trend", "Execution time p50 / p95 / p99"),
    )
    rows = [
        (
            f"`{p.pattern_id}`",
            f"{p.totals.executions:,}",
            _rate(p.totals.success_rate),
            _rate(p.wilson_lower_bound),
            duration(p.totals.time_saved_seconds),
            usd(p.totals.cost_saved_usd),
            _roi(p.totals),
            p.rating.label,
            _trend(p),
            _percentiles(p),
        )
        for p in analytics.patterns
    ]
    return ["## All patterns", "", *_md_table(header, rows)]


def _md_flags(analytics: Analytics) -> list[str]:
    flagged = [
        p
        for p in analytics.patterns
        if p.totals.negative_savings_executions or p.totals.cost_anomaly_executions
    ]
    lines = [
        "## Flags",
        "",
        "Successful executions that took longer or cost more than their estimate (negative "
        f"savings), and executions whose actual cost was more than {COST_ANOMALY_FACTOR} times "
        "the estimate (cost anomalies).",
        "",
    ]
    if not flagged:
        return [*lines, "None.", ""]
    rows = [
        (
            f"`{p.pattern_id}`",
            f"{p.totals.negative_savings_executions:,}"
            + _share(p.totals.negative_savings_executions, p.totals.executions),
            f"{p.totals.cost_anomaly_executions:,}",
        )
        for p in flagged
    ]
    return lines + _md_table(("Pattern", "Negative savings", "Cost anomalies"), rows)


def _md_pattern(pattern: PatternAnalytics, analytics: Analytics) -> list[str]:
    lines = [_span(pattern), *_pattern_figures(analytics, pattern)]
    return [f"- {line}" for line in lines] + [""]


# --------------------------------------------------------------------------- shared pieces


def _rate(fraction: Decimal | None) -> str:
    return fraction_as_percent(fraction, space="")


def _executions(totals: Totals) -> str:
    rate = _rate(totals.success_rate)
    return (
        f"{totals.executions:,} ({totals.successful_executions:,} successful, {rate} success rate)"
    )


def _time_saved(seconds: Decimal) -> str:
    if seconds < 0:
        return f"{number(seconds)} seconds (NEGATIVE)"
    if seconds < 60:
        return f"{number(seconds)} seconds"
    return f"{number(seconds)} seconds ({duration(seconds)})"


def _cost_saved(amount: Decimal) -> str:
    return f"{usd(amount)} (NEGATIVE)" if amount < 0 else usd(amount)


def _roi(totals: Totals) -> str:
    roi = totals.roi_percentage
    if roi is not None:
        return percent(roi, Decimal(1), space="")
    return "unbounded (nothing spent)" if totals.cost_saved_usd > 0 else "n/a (nothing spent)"


def _average(totals: Totals) -> str:
    seconds, cost = totals.average_time_saved_seconds, totals.average_cost_saved_usd
    if seconds is None or cost is None:
        return "n/a"
    return f"{number(seconds, TENTH)} seconds, {usd(cost)}"


def _flags(totals: Totals) -> str:
    parts = []
    if totals.negative_savings_executions:
        share = _share(totals.negative_savings_executions, totals.executions)
        parts.append(f"{totals.negative_savings_executions:,} with negative savings{share}")
    if totals.cost_anomaly_executions:
        noun = "anomaly" if totals.cost_anomaly_executions == 1 else "anomalies"
        parts.append(f"{totals.cost_anomaly_executions:,} cost {noun}")
    return ", ".join(parts)


def _share(part: int, whole: int) -> str:
    return f" ({_rate(Decimal(part) / whole)})" if whole else ""


def _percentiles(pattern: PatternAnalytics) -> str:
    timing = pattern.execution_time
    if timing is None:
        return "n/a (no stored executions in the window)"
    values = (number(v, TENTH) for v in (timing.p50, timing.p95, timing.p99))
    return "p50 {} s, p95 {} s, p99 {} s".format(*values)


def _trend(pattern: PatternAnalytics) -> str:
    fitted = pattern.success_rate_change
    if fitted is None:
        return f"{pattern.trend} (fewer than two days with executions)"
    if pattern.rating is Rating.INSUFFICIENT_DATA:
        return f"{pattern.trend} (too few executions to tell)"
    change = _signed(100 * fitted.change, TENTH)
    margin = number(100 * fitted.margin, TENTH)
    return f"{pattern.trend} (success rate {change} ± {margin} pp across the window)"


def _outcomes(totals: Totals) -> str:
    """`40 success, 5 failure, 3 partial_success, 2 error`: every outcome, 0 included."""
    return ", ".join(
        f"{count:,} {outcome}" for outcome, count in totals.executions_by_outcome.items()
    )


def _quality(totals: Totals) -> str:
    mean = totals.quality_score_mean
    if mean is None:
        return "n/a (no execution carries a quality_score)"
    scored = totals.quality_scored_executions
    noun = "execution" if scored == 1 else "executions"
    return f"mean {number(mean, QUALITY_STEP)} over {scored:,} scored {noun}"


def _tokens_saved(totals: Totals) -> str:
    measured = totals.token_measured_executions
    if not measured:
        return "n/a (no execution gives both actual_tokens and baseline_tokens)"
    noun = "execution" if measured == 1 else "executions"
    return f"{totals.tokens_saved:,} over {measured:,} {noun} with both token counts"


def _quality_trend(analytics: Analytics, pattern: PatternAnalytics) -> str:
    fitted = pattern.quality_change
    if fitted is None:
        return f"{pattern.quality_trend} (fewer than two days with scored executions)"
    if pattern.totals.quality_scored_executions < analytics.min_executions:
        return f"{pattern.quality_trend} (too few scored executions to tell)"
    change = _signed(fitted.change, QUALITY_STEP)
    margin = number(fitted.margin, QUALITY_STEP)
    return f"{pattern.quality_trend} (mean score {change} ± {margin} across the window)"


def _change_label(analytics: Analytics) -> str:
    return f"Change vs previous {analytics.window.days} days"


def _change(now: Totals, before: Totals) -> str:
    parts = [f"executions {now.executions - before.executions:+,}"]
    if now.success_rate is not None and before.success_rate is not None:
        parts.append(
            f"success rate {_signed(100 * (now.success_rate - before.success_rate), TENTH)} pp"
        )
    parts.append(f"cost saved {_signed_usd(now.cost_saved_usd - before.cost_saved_usd)}")
    if now.roi_percentage is not None and before.roi_percentage is not None:
        parts.append(f"ROI {_signed(now.roi_percentage - before.roi_percentage, Decimal(1))} pp")
    return ", ".join(parts)


def _signed(value: Decimal, step: Decimal) -> str:
    text = number(value, step)
    return text if text.startswith("-") else f"+{text}"


def _signed_usd(amount: Decimal) -> str:
    text = usd(amount)
    return text if text.startswith("-") else f"+{text}"


def _when(moment: datetime | None) -> str:
    return "n/a" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
