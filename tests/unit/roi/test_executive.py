"""The executive summary (worker.roi.executive, executive_render, executive_pdf): the report's
own figures, in every form, on one PDF page."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from worker import schemas
from worker.roi.analytics import Analytics, PatternAnalytics
from worker.roi.executive import LISTED, ExecutiveSummary, build_summary, period_window
from worker.roi.executive_pdf import render_pdf
from worker.roi.executive_render import CSV_HEADER, csv_rows, render
from worker.roi.formatting import usd
from worker.roi.methodology import Rating, Totals, Trend, rate, wilson_lower_bound
from worker.roi.month_to_date import MonthToDate, month_spans
from worker.roi.report_document import MonthToDateReport, build_document

D = Decimal
NOW = datetime(2026, 12, 6, 14, 30, tzinfo=UTC)
LONGEST_ID = "x" * 200  # the contract's longest pattern id
PDFTOTEXT = shutil.which("pdftotext")


def pattern(pattern_id: str, executions: int, successes: int, saved: str, spent: str) -> Any:
    totals = Totals(
        executions=executions,
        successful_executions=successes,
        time_saved_seconds=D(executions * 450),
        cost_saved_usd=D(saved),
        investment_usd=D(spent),
    )
    return PatternAnalytics(
        pattern_id=pattern_id,
        totals=totals,
        previous=Totals(),
        rating=rate(totals, 10),
        wilson_lower_bound=wilson_lower_bound(successes, executions),
        trend=Trend.STABLE,
        success_rate_change=None,
        execution_time=None,
        first_executed_at=None,
        last_executed_at=None,
    )


PATTERNS = (
    pattern("deploy-check", 100, 99, "1000.005", "100"),
    pattern("lint-fix", 50, 45, "200", "100"),
    pattern("cache-warm", 20, 15, "60", "100"),  # the fourth performer: not listed
    pattern("index-advisor", 40, 39, "900", "100"),
    pattern("flaky-e2e", 30, 5, "-50.123", "60"),
    pattern("retry-storm", 20, 10, "-5", "10"),
    pattern("slow-build", 20, 12, "20", "100"),
    pattern("new-thing", 3, 3, "9", "1"),  # too young to rate
)
MTD = MonthToDate(month_spans(NOW), D("1247.325"), 300, D("1057.1"), 250, D("6000"))


def analytics(patterns: tuple[PatternAnalytics, ...] = PATTERNS) -> Analytics:
    ordered = tuple(sorted(patterns, key=lambda p: p.pattern_id))
    return Analytics(NOW, period_window("month", NOW), 10, ordered)


SUMMARY = build_summary(analytics(), MTD, "month")


def as_json(summary: ExecutiveSummary) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(render(summary, "json"))
    return loaded


def test_the_period_is_the_utc_calendar_month_to_date() -> None:
    """period=month counts the UTC days from the first of the month, today included."""
    window = period_window("month", datetime(2027, 1, 1, 0, 30, tzinfo=UTC))
    assert (window.since, window.until) == (date(2027, 1, 1), date(2027, 1, 1))
    period = as_json(SUMMARY)["period"]
    assert period == {
        "name": "month",
        "label": "December 2026",
        "start": "2026-12-01T00:00:00Z",
        "end": "2026-12-06T14:30:00Z",
        "first_day": "2026-12-01",
        "last_day": "2026-12-06",
    }


def test_every_figure_is_the_report_documents() -> None:
    """Savings are the summary's month_to_date; productivity is overall; the lists are the
    report's top performers and underperformers, cut to LISTED."""
    found = analytics()
    report = json.loads(build_document(found, "summary", [], 10).model_dump_json())
    document = as_json(SUMMARY)
    assert document["cost_savings"] == json.loads(MonthToDateReport.of(MTD).model_dump_json())
    overall = report["overall"]
    productivity = document["productivity"]
    for name in ("executions", "successful_executions", "success_rate", "time_saved_seconds"):
        assert productivity[name] == overall[name]
    assert productivity["patterns"] == overall["patterns"] == len(PATTERNS)
    assert productivity["hours_saved"] == "35.375000"  # 283 executions x 450 s / 3600
    assert [p["pattern_id"] for p in document["top_performers"]] == report["top_performers"][
        :LISTED
    ]
    assert [p["pattern_id"] for p in document["underperformers"]] == report["underperformers"]
    best = document["top_performers"][0]
    assert best == {
        "rank": 1,
        "pattern_id": "deploy-check",
        "rating": "excellent",
        "recommendation": Rating.EXCELLENT.recommendation,
        "executions": 100,
        "success_rate": "0.990000",
        "wilson_lower_bound": "0.945514",
        "cost_saved_usd": "1000.005",
        "roi_percentage": "1000.005000",
    }
    assert document["underperformers"][0]["rating"] == "failed"
    assert document["underperformers"][0]["recommendation"] == (
        "Revoke approval and investigate failures"
    )


def test_json_validates_against_the_published_schema() -> None:
    """schemas/roi-executive-summary.v1.json describes what the summary prints."""
    validator = Draft202012Validator(schemas.roi_executive_summary_schema())
    Draft202012Validator.check_schema(validator.schema)
    assert not [e.message for e in validator.iter_errors(as_json(SUMMARY))]
    empty = build_summary(analytics(()), MTD, "month")
    assert not [e.message for e in validator.iter_errors(as_json(empty))]


def test_csv_holds_every_json_value_as_written() -> None:
    """One row per value, decimals as the JSON's exact strings, a block per listed pattern."""
    rows = list(csv.reader(io.StringIO(render(SUMMARY, "csv"))))
    assert tuple(rows[0]) == CSV_HEADER
    values = {(block, figure): value for block, figure, value in rows[1:]}
    document = as_json(SUMMARY)
    assert values["cost_savings", "cost_saved_usd"] == "1247.325"
    assert (
        values["cost_savings", "projected_annual_usd"]
        == document["cost_savings"]["projected_annual_usd"]
    )
    assert values["productivity", "success_rate"] == document["productivity"]["success_rate"]
    assert values["top_performers.1", "cost_saved_usd"] == "1000.005"
    assert values["underperformers.3", "pattern_id"] == "slow-build"
    assert values["cost_savings", "change_percentage"] == "17.994986"
    assert len(rows) - 1 == len(list(csv_rows(SUMMARY)))


def test_text_and_markdown_show_each_block_rounded_for_display() -> None:
    """Money to the cent, half up; the change against the same days of last month; each listed
    pattern with its rating and recommendation."""
    text = render(SUMMARY, "text")
    assert "December 2026, month to date: 2026-12-01 00:00 to 2026-12-06 14:30 UTC" in text
    assert "$1,247.33 saved this month" in text
    assert "Change vs the same days of last month: up 18.0 % (saved $1,057.10 then)" in text
    assert f"Projected annual (last 30 days x 365 / 30): {usd(MTD.projected_annual_usd)}" in text
    assert "Hours saved (net): 35.4 hours" in text
    assert "1. deploy-check: excellent, ROI 1,000 %, saved $1,000.01, success rate 99.0 %" in text
    assert "   Recommendation: Revoke approval and investigate failures" in text
    assert "cache-warm" not in text  # fourth of the performers
    markdown = render(SUMMARY, "markdown")
    assert markdown.startswith("# Automation ROI summary\n")
    assert "**$1,247.33 saved this month**" in markdown
    assert "| 1 | `flaky-e2e` | failed | 16.7 % | -84 % | -$50.12 | Revoke approval" in markdown


def test_empty_lists_say_why() -> None:
    """A month without rated patterns says what a rating needs instead of an empty table."""
    empty = build_summary(analytics((pattern("new-thing", 3, 3, "9", "1"),)), MTD, "month")
    text = render(empty, "text")
    assert "None: no pattern is rated acceptable or better this month (a rating needs 10" in text
    assert "None: no pattern is rated poor or failed this month." in text
    nothing = MonthToDate(month_spans(NOW), D(0), 0, D(0), 0, D(0))
    assert "Change vs the same days of last month: n/a (saved $0.00 then)" in render(
        build_summary(analytics(()), nothing, "month"), "text"
    )


def pages(pdf: bytes) -> int:
    """Page objects in a PDF as fpdf2 writes it (uncompressed object headers)."""
    return len(re.findall(rb"/Type /Page\b", pdf))


def longest_summary() -> ExecutiveSummary:
    """Full lists of the longest ids and the largest amounts the contract allows."""
    many = tuple(
        pattern(f"{n}{LONGEST_ID}"[:200], 10**6, 10**6 - k, f"{9 * 10**14}.99", "1")
        for n, k in enumerate((0, 0, 0, 10**6, 10**6 - 1, 10**6 - 2))
    )
    big = MonthToDate(month_spans(NOW), D("-999999999999999.995"), 10**9, D(1), 1, D(10**15))
    summary = build_summary(analytics(many), big, "month")
    assert len(summary.top_performers) == len(summary.underperformers) == LISTED
    return summary


def test_the_pdf_is_one_page_even_at_its_longest() -> None:
    """Three patterns per list with 200-character ids and 15-digit amounts still fit one
    page, and a character outside Latin-1 does not stop the core font."""
    assert pages(render_pdf(SUMMARY)) == 1
    assert pages(render_pdf(longest_summary())) == 1
    odd = build_summary(analytics((pattern("caf\u00e9-\u2b50", 30, 30, "99", "1"),)), MTD, "month")
    assert pages(render_pdf(odd)) == 1
    assert render_pdf(SUMMARY).startswith(b"%PDF-")


def pdf_text(path: Path, *options: str) -> str:
    assert PDFTOTEXT is not None
    return subprocess.run(
        [PDFTOTEXT, *options, str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.skipif(PDFTOTEXT is None, reason="needs poppler-utils' pdftotext")
def test_the_pdf_text_is_the_text_forms_figures(tmp_path: Path) -> None:
    """pdftotext reads back the headline, each block's figures and the listed patterns."""
    path = tmp_path / "summary.pdf"
    path.write_bytes(render_pdf(SUMMARY))
    shown = pdf_text(path, "-layout")
    for expected in (
        "Automation ROI summary",
        "Period: December 2026, month to date",
        "$1,247.33 saved this month",
        "up 18.0 % (saved $1,057.10 then)",
        usd(MTD.projected_month_end_usd),
        usd(MTD.projected_annual_usd),
        "283 (228 successful)",
        "35.4 hours",
        "80.6 %",
        "deploy-check",
        "Recommendation: Keep approved; a candidate for wider rollout",
        "flaky-e2e",
        "-$50.12",
        "Recommendation: Revoke approval and investigate failures",
    ):
        assert expected in shown, expected
    assert "cache-warm" not in shown
    longest = tmp_path / "longest.pdf"
    longest.write_bytes(render_pdf(longest_summary()))
    shown = pdf_text(longest)
    assert "-$999,999,999,999,999.99" in shown or "-$1,000,000,000,000,000.00" in shown
    assert "xxx..." in shown  # the id shortened to its cell
