"""`roi-worker report` rendering (worker.roi.report): text, JSON, CSV, Markdown from Analytics."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from worker.roi import report
from worker.roi.analytics import Analytics, PatternAnalytics, Percentiles
from worker.roi.methodology import (
    PERFORMING,
    UNDERPERFORMING,
    RateChange,
    Rating,
    Totals,
    Trend,
    Window,
    rate,
    wilson_lower_bound,
)
from worker.roi.report import Request, full_report, render

D = Decimal
SCHEMA = json.loads(
    (Path(__file__).parents[3] / "schemas" / "roi-report.v1.json").read_text(encoding="utf-8")
)
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
TODAY = date(2026, 5, 20)
GENERATED_AT = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
RULE = "=" * 80

# The patterns, chosen so every displayed figure can be checked by hand:
# - test-retry-automation: excellent (148/150 = 0.9867; ROI 100 * 425.50 / 136.38 = 311.996 %)
# - db-index-advisor: good (18/20 = 0.90; ROI 100 * 150.00 / 100.00 = 150 %)
# - flaky-deploy-check: failed (20/40 = 0.50; ROI 100 * -30.00 / 60.00 = -50 %), flagged
# - slow-cache-warmup: poor (12/20 = 0.60 < 0.70; ROI 100 * 5.00 / 10.00 = 50 %), flagged
# - new-lint-fix: insufficient_data (5 executions; ROI 500 % would top the list otherwise)
EXCELLENT = Totals(
    executions=150,
    successful_executions=148,
    time_saved_seconds=D(3450),
    cost_saved_usd=D("425.50"),
    investment_usd=D("136.38"),
    estimated_cost_usd=D("560.00"),
    execution_time_seconds=D(5550),
    estimated_time_seconds=D(9000),
    outcome_success_executions=145,
    outcome_failure_executions=1,
    outcome_partial_success_executions=3,  # reported with success=true
    outcome_error_executions=1,
    quality_scored_executions=100,
    quality_score_sum=D("87.35"),
    token_measured_executions=150,
    tokens_saved=1234500,
)
GOOD = Totals(
    executions=20,
    successful_executions=18,
    time_saved_seconds=D(600),
    cost_saved_usd=D("150.00"),
    investment_usd=D("100.00"),
    estimated_cost_usd=D("250.00"),
    execution_time_seconds=D(400),
    estimated_time_seconds=D(1000),
    outcome_success_executions=18,
    outcome_failure_executions=2,
)
FAILED = Totals(
    executions=40,
    successful_executions=20,
    time_saved_seconds=D(-1200),
    cost_saved_usd=D("-30.00"),
    investment_usd=D("60.00"),
    estimated_cost_usd=D("40.00"),
    execution_time_seconds=D(2400),
    estimated_time_seconds=D(1500),
    negative_savings_executions=4,
    cost_anomaly_executions=1,
    outcome_success_executions=20,
    outcome_failure_executions=15,
    outcome_error_executions=5,
)
POOR = Totals(
    executions=20,
    successful_executions=12,
    time_saved_seconds=D(45),
    cost_saved_usd=D("5.00"),
    investment_usd=D("10.00"),
    estimated_cost_usd=D("15.00"),
    execution_time_seconds=D(155),
    estimated_time_seconds=D(200),
    negative_savings_executions=2,
    outcome_success_executions=12,
    outcome_failure_executions=8,
)
INSUFFICIENT = Totals(
    executions=5,
    successful_executions=5,
    time_saved_seconds=D(300),
    cost_saved_usd=D("10.00"),
    investment_usd=D("2.00"),
    estimated_cost_usd=D("12.00"),
    execution_time_seconds=D(50),
    estimated_time_seconds=D(350),
    outcome_success_executions=5,
)


def pattern(
    pattern_id: str,
    totals: Totals,
    rating: Rating,
    *,
    previous: Totals | None = None,
    trend: Trend = Trend.STABLE,
    change: RateChange | None = None,
    timing: Percentiles | None = None,
    first: datetime | None = None,
    last: datetime | None = None,
    quality: RateChange | None = None,
) -> PatternAnalytics:
    """A PatternAnalytics as load_analytics builds it, with the rating stated (and checked)."""
    assert rate(totals) == rating, pattern_id
    return PatternAnalytics(
        pattern_id=pattern_id,
        totals=totals,
        previous=previous,
        rating=rating,
        wilson_lower_bound=wilson_lower_bound(totals.successful_executions, totals.executions),
        trend=trend,
        success_rate_change=change,
        execution_time=timing,
        first_executed_at=first,
        last_executed_at=last,
        quality_change=quality,
    )


def all_time(*, window: Window | None = None, previous: bool = False) -> Analytics:
    """The five patterns over all time, or over `window` with previous-window totals."""
    before: dict[str, Totals] = {}
    if previous:
        # Only test-retry-automation ran in the previous window: 100 runs, 96 successful, ROI 300.
        before = {
            "test-retry-automation": Totals(
                executions=100,
                successful_executions=96,
                time_saved_seconds=D(2000),
                cost_saved_usd=D("300.00"),
                investment_usd=D("100.00"),
            )
        }
    patterns = [
        pattern(
            "db-index-advisor",
            GOOD,
            Rating.GOOD,
            change=RateChange(D("0.1"), D("0.3")),
        ),
        pattern("flaky-deploy-check", FAILED, Rating.FAILED),
        pattern(
            "new-lint-fix",
            INSUFFICIENT,
            Rating.INSUFFICIENT_DATA,
            change=RateChange(D(0), D("0.5")),
        ),
        pattern(
            "slow-cache-warmup",
            POOR,
            Rating.POOR,
            trend=Trend.DECREASING,
            change=RateChange(D("-0.3"), D("0.2")),
        ),
        pattern(
            "test-retry-automation",
            EXCELLENT,
            Rating.EXCELLENT,
            change=RateChange(D("0.0123"), D("0.0456")),
            timing=Percentiles(D(12), D("30.45"), D(45)),
            quality=RateChange(D("0.021"), D("0.034")),
            first=datetime(2026, 4, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))),
            last=datetime(2026, 5, 19, 17, 30, tzinfo=UTC),
        ),
    ]
    if previous:
        patterns = [replace(p, previous=before.get(p.pattern_id, Totals())) for p in patterns]
    return Analytics(
        generated_at=GENERATED_AT,
        window=window or Window.parse(None, TODAY),
        min_executions=10,
        patterns=tuple(patterns),
    )


def windowed() -> Analytics:
    """The same patterns over the last 7 days, compared with the 7 days before."""
    return all_time(window=Window.parse("7d", TODAY), previous=True)


def json_document(analytics: Analytics, request: Request) -> dict[str, Any]:
    """The JSON report as a plain JSON reader sees it."""
    text = render(analytics, request)
    assert text.endswith("}\n")
    document: dict[str, Any] = json.loads(text)
    return document


# --------------------------------------------------------------------------- text

SUMMARY_TEXT = f"""\
{RULE}
PATTERN ROI SUMMARY
{RULE}

TOP PERFORMERS (by ROI)
1. Pattern: test-retry-automation
   Executions: 150 (148 successful, 98.7% success rate)
   Time saved: 3,450 seconds (57.5 minutes)
   Cost saved: $425.50
   ROI: 312%
   Rating: EXCELLENT ⭐⭐⭐

2. Pattern: db-index-advisor
   Executions: 20 (18 successful, 90.0% success rate)
   Time saved: 600 seconds (10 minutes)
   Cost saved: $150.00
   ROI: 150%
   Rating: GOOD ⭐⭐

UNDERPERFORMERS (needs attention)
1. Pattern: flaky-deploy-check
   Executions: 40 (20 successful, 50.0% success rate)
   Time saved: -1,200 seconds (NEGATIVE)
   Cost saved: -$30.00 (NEGATIVE)
   ROI: -50%
   Rating: FAILED ❌
   Recommendation: Revoke approval and investigate failures
   Flags: 4 with negative savings (10.0%), 1 cost anomaly

2. Pattern: slow-cache-warmup
   Executions: 20 (12 successful, 60.0% success rate)
   Time saved: 45 seconds
   Cost saved: $5.00
   ROI: 50%
   Rating: POOR ⚠️
   Recommendation: Review the pattern: its success rate or ROI is below target
   Flags: 2 with negative savings (10.0%)

OVERALL METRICS
Total patterns tracked: 5
Total executions: 235
Total time saved: 3,195 seconds (53.3 minutes)
Total cost saved: $560.50
Average success rate: 86.4%
Executions with negative savings: 6 (2.6%)
Cost anomalies (actual cost > 10x estimate): 1
Outcomes: 200 success, 26 failure, 3 partial_success, 6 error
Quality: mean 0.874 over 100 scored executions
Tokens saved: 1,234,500 over 150 executions with both token counts
"""


def test_summary_text_is_exactly_the_documented_layout() -> None:
    """Top performers, underperformers with NEGATIVE markers and advice, then overall metrics."""
    # Overall: 235 executions, 203 successful (86.38 %), 3450 + 600 - 1200 + 45 + 300 = 3195 s
    # (53.25 minutes, half up 53.3), $425.50 + 150 - 30 + 5 + 10 = $560.50, 6/235 = 2.55 %.
    assert render(all_time(), Request("summary")) == SUMMARY_TEXT


def test_request_defaults_to_text_and_a_limit_of_ten() -> None:
    """Request("summary") is text with a limit of 10 unless told otherwise."""
    request = Request("summary")
    assert (request.format, request.limit, request.pattern_id) == ("text", 10, None)


WINDOWED_TOP_TEXT = f"""\
{RULE}
PATTERN ROI SUMMARY
{RULE}
Window: 2026-05-14 to now (7 UTC days), compared with 2026-05-07 to 2026-05-13

TOP PERFORMERS (by ROI)
1. Pattern: test-retry-automation
   Executions: 150 (148 successful, 98.7% success rate)
   Time saved: 3,450 seconds (57.5 minutes)
   Cost saved: $425.50
   ROI: 312%
   Rating: EXCELLENT ⭐⭐⭐
   Change vs previous 7 days: executions +50, success rate +2.7 pp, cost saved +$125.50, ROI +12 pp
"""


def test_windowed_top_performers_show_the_window_and_changes_and_obey_limit() -> None:
    """A 7-day window names both windows; each block ends with its change; limit 1 shows one."""
    # Previous window: 100 runs, 96 successful (0.96), $300.00 saved, ROI 300:
    # +50 runs, 98.667 - 96 = +2.7 pp, +$125.50, 311.996 - 300 = +12 pp.
    text = render(windowed(), Request("top_performers", limit=1))
    assert text == WINDOWED_TOP_TEXT


def test_windowed_change_omits_rates_the_previous_window_lacks() -> None:
    """Without previous executions the change has no success rate or ROI part."""
    text = render(windowed(), Request("underperformers"))
    assert "   Change vs previous 7 days: executions +40, cost saved -$30.00\n" in text
    assert "   Change vs previous 7 days: executions +20, cost saved +$5.00\n" in text
    assert "TOP PERFORMERS" not in text
    assert "OVERALL METRICS" not in text


def test_windowed_overall_change_compares_all_patterns() -> None:
    """The overall block ends with the change of all patterns together."""
    text = render(windowed(), Request("summary"))
    # 235 - 100 runs; 203/235 - 96/100 = 86.383 - 96 = -9.6 pp; 560.50 - 300.00;
    # ROI 100 * 560.50 / 308.38 = 181.756 - 300 = -118 pp.
    assert text.endswith(
        "Change vs previous 7 days: executions +135, success rate -9.6 pp, "
        "cost saved +$260.50, ROI -118 pp\n"
    )


PATTERN_TEXT = f"""\
{RULE}
PATTERN ROI REPORT: test-retry-automation
{RULE}
Window: all time
First execution: 2026-04-01 08:00 UTC; last: 2026-05-19 17:30 UTC

Executions: 150 (148 successful, 98.7% success rate)
Success rate, 95% lower bound (Wilson): 95.3%
Time saved: 3,450 seconds (57.5 minutes)
Cost saved: $425.50
Investment (actual cost): $136.38
Average saved per execution: 23.0 seconds, $2.84
ROI: 312%
Execution time: p50 12.0 s, p95 30.5 s, p99 45.0 s
Flags: none
Outcomes: 145 success, 1 failure, 3 partial_success, 1 error
Quality: mean 0.874 over 100 scored executions
Tokens saved: 1,234,500 over 150 executions with both token counts
Trend: stable (success rate +1.2 ± 4.6 pp across the window)
Quality trend: stable (mean score +0.021 ± 0.034 across the window)
Rating: EXCELLENT ⭐⭐⭐
Recommendation: Keep approved; a candidate for wider rollout
"""


def test_pattern_selection_renders_the_single_pattern_view() -> None:
    """One pattern: Wilson bound, investment, averages, percentiles, flags, trend, advice."""
    # Wilson(148, 150) = 0.95269; 3450/150 = 23 s, 425.50/150 = $2.8367; p95 30.45 -> 30.5;
    # first execution 10:00 at UTC+2 is 08:00 UTC.
    request = Request("pattern", pattern_id="test-retry-automation")
    assert render(all_time(), request) == PATTERN_TEXT


def test_single_pattern_view_of_a_flagged_failed_pattern() -> None:
    """A failed pattern's view shows its flags, missing percentiles and trend, and its advice."""
    text = render(all_time(), Request("pattern", pattern_id="flaky-deploy-check"))
    lines = text.splitlines()
    assert lines[1] == "PATTERN ROI REPORT: flaky-deploy-check"
    assert "First execution: n/a; last: n/a" in lines
    assert "Time saved: -1,200 seconds (NEGATIVE)" in lines
    assert "Cost saved: -$30.00 (NEGATIVE)" in lines
    assert "Average saved per execution: -30.0 seconds, -$0.75" in lines
    assert "Execution time: n/a (no stored executions in the window)" in lines
    assert "Flags: 4 with negative savings (10.0%), 1 cost anomaly" in lines
    assert "Trend: stable (fewer than two days with executions)" in lines
    assert lines[-2:] == [
        "Rating: FAILED ❌",
        "Recommendation: Revoke approval and investigate failures",
    ]


def test_insufficient_data_pattern_does_not_claim_a_trend() -> None:
    """With too few executions the trend says so instead of showing a change."""
    text = render(all_time(), Request("pattern", pattern_id="new-lint-fix"))
    assert "Trend: stable (too few executions to tell)\n" in text
    assert "Rating: INSUFFICIENT DATA\n" in text


def test_empty_sections_say_why() -> None:
    """No rated pattern: both lists print their empty-section message."""
    only_new = Analytics(
        GENERATED_AT,
        Window.parse(None, TODAY),
        10,
        (pattern("new-lint-fix", INSUFFICIENT, Rating.INSUFFICIENT_DATA),),
    )
    text = render(only_new, Request("summary"))
    assert (
        "TOP PERFORMERS (by ROI)\nNone: no pattern is rated acceptable or better "
        "(a rating needs 10 executions in the window).\n"
    ) in text
    assert "UNDERPERFORMERS (needs attention)\nNone: no pattern is rated poor or failed.\n" in text
    assert "Total patterns tracked: 1\n" in text
    markdown = render(only_new, Request("summary", format="markdown"))
    assert "## Top performers (by ROI)\n\nNone.\n" in markdown
    assert "## Underperformers (needs attention)\n\nNone.\n" in markdown


# --------------------------------------------------------------------------- json


def test_json_validates_against_the_published_schema() -> None:
    """Every selection, all time and windowed, is a valid roi-report.v1 document."""
    requests = [
        Request("summary", "json"),
        Request("top_performers", "json", limit=1),
        Request("underperformers", "json"),
        Request("pattern", "json", pattern_id="test-retry-automation"),
        Request("pattern", "json", pattern_id="flaky-deploy-check"),
    ]
    for analytics in (all_time(), windowed()):
        for request in requests:
            document = json_document(analytics, request)
            errors = [error.message for error in VALIDATOR.iter_errors(document)]
            assert not errors, (request, errors)
            assert document["selection"] == request.selection


def test_json_holds_exact_sums_and_derived_figures_rounded_to_six_places() -> None:
    """Sums as stored, derived figures half up to 6 places, all decimals as strings."""
    document = json_document(all_time(), Request("summary", "json"))
    assert document["report_version"] == 1
    assert document["generated_at"] == "2026-05-20T12:00:00Z"
    assert document["min_executions"] == 10
    assert document["window"] == {
        "since": None,
        "until": "2026-05-20",
        "days": None,
        "previous_since": None,
        "previous_until": None,
    }
    assert document["top_performers"] == ["test-retry-automation", "db-index-advisor"]
    assert document["underperformers"] == ["flaky-deploy-check", "slow-cache-warmup"]
    assert [p["pattern_id"] for p in document["patterns"]] == [
        "db-index-advisor",
        "flaky-deploy-check",
        "new-lint-fix",
        "slow-cache-warmup",
        "test-retry-automation",
    ]
    best = document["patterns"][4]
    first = best.pop("first_executed_at")
    assert best == {
        "pattern_id": "test-retry-automation",
        "executions": 150,
        "successful_executions": 148,
        "success_rate": "0.986667",  # 148/150 = 0.98666...
        "time_saved_seconds": "3450",
        "cost_saved_usd": "425.50",
        "investment_usd": "136.38",
        "estimated_cost_usd": "560.00",
        "execution_time_seconds": "5550",
        "estimated_time_seconds": "9000",
        "average_time_saved_seconds": "23.000000",
        "average_cost_saved_usd": "2.836667",  # 425.50/150 = 2.83666...
        "roi_percentage": "311.995894",  # 42550/136.38 = 311.9958938...
        "negative_savings_executions": 0,
        "cost_anomaly_executions": 0,
        "outcome_success_executions": 145,
        "outcome_failure_executions": 1,
        "outcome_partial_success_executions": 3,
        "outcome_error_executions": 1,
        "quality_scored_executions": 100,
        "quality_score_sum": "87.35",
        "quality_score_mean": "0.873500",
        "token_measured_executions": 150,
        "tokens_saved": 1234500,
        "rating": "excellent",
        "recommendation": "Keep approved; a candidate for wider rollout",
        "wilson_lower_bound": "0.952693",  # statsmodels: 0.9526930912996325
        "trend": "stable",
        "success_rate_change": "0.012300",
        "success_rate_change_margin": "0.045600",
        "quality_trend": "stable",
        "quality_score_change": "0.021000",
        "quality_score_change_margin": "0.034000",
        "execution_time_percentiles": {"p50": "12", "p95": "30.45", "p99": "45"},
        "last_executed_at": "2026-05-19T17:30:00Z",
        "previous": None,
        "change": None,
    }
    # The instant, whichever UTC offset it is written with.
    assert datetime.fromisoformat(first) == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    failed = document["patterns"][1]
    assert failed["rating"] == "failed"
    assert failed["recommendation"] == "Revoke approval and investigate failures"
    assert failed["time_saved_seconds"] == "-1200"
    assert failed["cost_saved_usd"] == "-30.00"
    assert failed["roi_percentage"] == "-50.000000"
    assert failed["average_cost_saved_usd"] == "-0.750000"
    assert failed["success_rate"] == "0.500000"
    assert failed["negative_savings_executions"] == 4
    assert failed["cost_anomaly_executions"] == 1
    assert failed["success_rate_change"] is None
    assert failed["success_rate_change_margin"] is None
    assert failed["execution_time_percentiles"] is None
    assert document["patterns"][3]["success_rate_change"] == "-0.300000"


def test_json_overall_is_per_execution_over_every_pattern() -> None:
    """overall sums all patterns; its success rate is 203/235, not the mean of the five rates."""
    overall = json_document(all_time(), Request("summary", "json"))["overall"]
    assert overall == {
        "executions": 235,
        "successful_executions": 203,
        "success_rate": "0.863830",  # 203/235 = 0.8638297...; the mean of rates would be 0.7973
        "time_saved_seconds": "3195",
        "cost_saved_usd": "560.50",
        "investment_usd": "308.38",
        "estimated_cost_usd": "877.00",
        "execution_time_seconds": "8555",
        "estimated_time_seconds": "12050",
        "average_time_saved_seconds": "13.595745",  # 3195/235 = 13.5957446...
        "average_cost_saved_usd": "2.385106",  # 560.50/235 = 2.3851063...
        "roi_percentage": "181.756275",  # 56050/308.38 = 181.7562747...
        "negative_savings_executions": 6,
        "cost_anomaly_executions": 1,
        "outcome_success_executions": 200,
        "outcome_failure_executions": 26,
        "outcome_partial_success_executions": 3,
        "outcome_error_executions": 6,
        "quality_scored_executions": 100,
        "quality_score_sum": "87.35",
        "quality_score_mean": "0.873500",
        "token_measured_executions": 150,
        "tokens_saved": 1234500,
        "patterns": 5,
        "previous": None,
        "change": None,
    }


def test_json_window_previous_and_change() -> None:
    """A window names its days and the previous window; change is now minus previous."""
    document = json_document(windowed(), Request("summary", "json"))
    assert document["window"] == {
        "since": "2026-05-14",
        "until": "2026-05-20",
        "days": 7,
        "previous_since": "2026-05-07",
        "previous_until": "2026-05-13",
    }
    best = document["patterns"][4]
    assert best["previous"]["executions"] == 100
    assert best["previous"]["success_rate"] == "0.960000"
    assert best["previous"]["roi_percentage"] == "300.000000"
    assert best["change"] == {
        "executions": 50,
        "success_rate": "0.026667",  # 0.986666... - 0.96
        "time_saved_seconds": "1450",
        "cost_saved_usd": "125.50",
        "roi_percentage": "11.995894",
    }
    fresh = document["patterns"][1]  # no executions in the previous window
    assert fresh["previous"]["executions"] == 0
    assert fresh["previous"]["success_rate"] is None
    assert fresh["previous"]["roi_percentage"] is None
    assert fresh["change"] == {
        "executions": 40,
        "success_rate": None,
        "time_saved_seconds": "-1200",
        "cost_saved_usd": "-30.00",
        "roi_percentage": None,
    }
    assert document["overall"]["patterns"] == 5
    assert document["overall"]["previous"]["executions"] == 100
    assert document["overall"]["change"]["executions"] == 135


def test_json_derived_figures_round_half_up_away_from_zero() -> None:
    """An exact half at the 7th place rounds up in size: 1/128 and -0.0016/128."""
    halves = Totals(
        executions=128,
        successful_executions=1,  # 1/128 = 0.0078125
        cost_saved_usd=D("-0.0016"),  # -0.0016/128 = -0.0000125
        investment_usd=D("0.0016"),
    )
    analytics = Analytics(
        GENERATED_AT, Window.parse(None, TODAY), 10, (pattern("halves", halves, Rating.FAILED),)
    )
    entry = json_document(analytics, Request("summary", "json"))["patterns"][0]
    assert entry["success_rate"] == "0.007813"
    assert entry["average_cost_saved_usd"] == "-0.000013"
    assert entry["roi_percentage"] == "-100.000000"


def test_json_lists_obey_the_limit() -> None:
    """--limit cuts top_performers and underperformers in the document too."""
    document = json_document(all_time(), Request("summary", "json", limit=1))
    assert document["top_performers"] == ["test-retry-automation"]
    assert document["underperformers"] == ["flaky-deploy-check"]
    assert len(document["patterns"]) == 5  # a summary still lists every pattern


def test_json_pattern_selection_holds_only_that_pattern() -> None:
    """A pattern id selects one entry in `patterns`."""
    request = Request("pattern", "json", pattern_id="slow-cache-warmup")
    document = json_document(all_time(), request)
    assert [p["pattern_id"] for p in document["patterns"]] == ["slow-cache-warmup"]
    assert document["patterns"][0]["trend"] == "decreasing"


# --------------------------------------------------------------------------- csv


CSV_HEADER = (
    *("pattern_id", "executions", "successful_executions", "success_rate"),
    *("wilson_lower_bound", "time_saved_seconds", "cost_saved_usd", "investment_usd"),
    *("average_time_saved_seconds", "average_cost_saved_usd", "roi_percentage", "rating"),
    *("recommendation", "trend", "success_rate_change", "success_rate_change_margin"),
    *("negative_savings_executions", "cost_anomaly_executions", "execution_time_p50_seconds"),
    *("execution_time_p95_seconds", "execution_time_p99_seconds", "previous_executions"),
    *("previous_cost_saved_usd", "previous_roi_percentage", "first_executed_at"),
    "last_executed_at",
    *("outcome_success_executions", "outcome_failure_executions"),
    *("outcome_partial_success_executions", "outcome_error_executions"),
    *("quality_scored_executions", "quality_score_mean", "quality_trend"),
    *("quality_score_change", "quality_score_change_margin", "token_measured_executions"),
    "tokens_saved",
)


def test_csv_has_the_documented_columns_and_the_json_values() -> None:
    """Header = CSV_COLUMNS; one row per pattern whose cells equal the JSON document's."""
    for analytics in (all_time(), windowed()):
        rows = list(csv.reader(io.StringIO(render(analytics, Request("summary", "csv")))))
        assert tuple(rows[0]) == report.CSV_COLUMNS == CSV_HEADER
        document = json_document(analytics, Request("summary", "json"))
        assert len(rows) == 1 + len(document["patterns"]) == 6
        for row, entry in zip(rows[1:], document["patterns"], strict=True):
            timing = entry["execution_time_percentiles"] or {}
            previous = entry["previous"] or {}
            expected = {
                **entry,
                "execution_time_p50_seconds": timing.get("p50"),
                "execution_time_p95_seconds": timing.get("p95"),
                "execution_time_p99_seconds": timing.get("p99"),
                "previous_executions": previous.get("executions"),
                "previous_cost_saved_usd": previous.get("cost_saved_usd"),
                "previous_roi_percentage": previous.get("roi_percentage"),
            }
            cells = dict(zip(report.CSV_COLUMNS, row, strict=True))
            for column in report.CSV_COLUMNS:
                value = expected[column]
                assert cells[column] == ("" if value is None else str(value)), column


def test_csv_row_of_the_excellent_pattern() -> None:
    """A spot check of one row against hand-computed values."""
    rows = list(csv.DictReader(io.StringIO(render(all_time(), Request("summary", "csv")))))
    best = rows[4]
    assert best["pattern_id"] == "test-retry-automation"
    assert best["executions"] == "150"
    assert best["success_rate"] == "0.986667"
    assert best["roi_percentage"] == "311.995894"
    assert best["recommendation"] == "Keep approved; a candidate for wider rollout"
    assert best["execution_time_p95_seconds"] == "30.45"
    assert best["previous_executions"] == ""
    assert best["outcome_partial_success_executions"] == "3"
    assert (best["quality_score_mean"], best["quality_scored_executions"]) == ("0.873500", "100")
    assert best["tokens_saved"] == "1234500"
    first = datetime.fromisoformat(best["first_executed_at"])
    assert first == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def test_csv_follows_the_selection() -> None:
    """Underperformers as CSV: only their rows, lowest ROI first."""
    text = render(all_time(), Request("underperformers", "csv"))
    ids = [row["pattern_id"] for row in csv.DictReader(io.StringIO(text))]
    assert ids == ["flaky-deploy-check", "slow-cache-warmup"]


# --------------------------------------------------------------------------- markdown


def table_rows(markdown: str, heading: str) -> list[str]:
    """The body rows of the first table after `heading` (header and rule excluded)."""
    lines = markdown.splitlines()
    start = lines.index(heading)
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append(line)
    return table[2:]


def test_markdown_summary_sections_and_rows() -> None:
    """Title, preamble, both rankings with one row per ranked pattern, then the overall table."""
    text = render(all_time(), Request("summary", "markdown"))
    lines = text.splitlines()
    assert lines[0] == "# Pattern ROI summary"
    assert lines[2] == (
        "Generated 2026-05-20 12:00 UTC. Window: all time. Ratings need at least 10 "
        "executions; every figure is defined in [the ROI methodology](docs/roi-methodology.md)."
    )
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == [
        "## Top performers (by ROI)",
        "## Underperformers (needs attention)",
        "## Overall",
    ]
    assert table_rows(text, "## Top performers (by ROI)") == [
        "| 1 | `test-retry-automation` | 150 | 98.7% | 57.5 minutes | $425.50 | 312% "
        "| EXCELLENT ⭐⭐⭐ | Keep approved; a candidate for wider rollout |",
        "| 2 | `db-index-advisor` | 20 | 90.0% | 10 minutes | $150.00 | 150% "
        "| GOOD ⭐⭐ | Keep approved |",
    ]
    under = table_rows(text, "## Underperformers (needs attention)")
    assert [row.split(" | ")[1] for row in under] == [
        "`flaky-deploy-check`",
        "`slow-cache-warmup`",
    ]
    assert "| 1 | `flaky-deploy-check` | 40 | 50.0% | -20 minutes | -$30.00 | -50% " in under[0]
    overall = table_rows(text, "## Overall")
    assert overall[0] == "| Executions | 235 |"
    assert "| ROI | 182% |" in overall
    assert "| Cost anomalies (> 10x estimate) | 1 |" in overall
    assert "Patterns tracked: 5" in lines


def test_markdown_windowed_tables_have_a_change_column() -> None:
    """With a window the rankings add a change column and the overall table the previous one."""
    text = render(windowed(), Request("summary", "markdown"))
    assert "Window: 2026-05-14 to now (7 UTC days), compared with the previous 7 days " in text
    top = table_rows(text, "## Top performers (by ROI)")
    assert top[0].endswith(
        "| executions +50, success rate +2.7 pp, cost saved +$125.50, ROI +12 pp |"
    )
    assert "| Figure | This window | Previous window |" in text
    assert "| Executions | 235 | 100 |" in text


def test_markdown_pattern_selection_is_the_single_pattern_view() -> None:
    """A pattern id renders its title, the preamble and its figures as a list."""
    text = render(all_time(), Request("pattern", "markdown", pattern_id="test-retry-automation"))
    lines = text.splitlines()
    assert lines[0] == "# Pattern ROI report: test-retry-automation"
    figures = [line for line in lines if line.startswith("- ")]
    view = PATTERN_TEXT.splitlines()
    # The first/last execution line, then every figure; the window is in the preamble.
    assert figures == ["- " + view[4]] + ["- " + line for line in view[6:]]
    assert "## " not in text


def test_full_report_has_every_section_and_every_pattern() -> None:
    """--report: overall, both rankings, a row per pattern in All patterns, and the flags."""
    text = full_report(all_time(), limit=10)
    lines = text.splitlines()
    assert lines[0] == "# Pattern ROI report"
    assert [line for line in lines if line.startswith("## ")] == [
        "## Overall",
        "## Top performers (by ROI)",
        "## Underperformers (needs attention)",
        "## All patterns",
        "## Flags",
    ]
    everything = table_rows(text, "## All patterns")
    assert [row.split(" | ")[0] for row in everything] == [
        "| `db-index-advisor`",
        "| `flaky-deploy-check`",
        "| `new-lint-fix`",
        "| `slow-cache-warmup`",
        "| `test-retry-automation`",
    ]
    assert everything[4] == (
        "| `test-retry-automation` | 150 | 98.7% | 95.3% | 57.5 minutes | $425.50 | 312% "
        "| EXCELLENT ⭐⭐⭐ | stable (success rate +1.2 ± 4.6 pp across the window) "
        "| p50 12.0 s, p95 30.5 s, p99 45.0 s |"
    )
    assert table_rows(text, "## Flags") == [
        "| `flaky-deploy-check` | 4 (10.0%) | 1 |",
        "| `slow-cache-warmup` | 2 (10.0%) | 0 |",
    ]
    assert len(table_rows(text, "## Top performers (by ROI)")) == 2
    assert len(table_rows(text, "## Underperformers (needs attention)")) == 2
    assert text.endswith("|\n")


def test_full_report_limit_cuts_the_rankings_not_the_pattern_list() -> None:
    """limit 1: one row per ranking, still every pattern under All patterns."""
    text = full_report(all_time(), limit=1)
    assert len(table_rows(text, "## Top performers (by ROI)")) == 1
    assert len(table_rows(text, "## Underperformers (needs attention)")) == 1
    assert len(table_rows(text, "## All patterns")) == 5


# --------------------------------------------------------------------------- rankings


def every_rating() -> Analytics:
    """Ten patterns covering each rating, unbounded and unspent ROI, and ties."""

    def t(executions: int, successes: int, saved: str, spent: str) -> Totals:
        return Totals(
            executions=executions,
            successful_executions=successes,
            cost_saved_usd=D(saved),
            investment_usd=D(spent),
        )

    cases = [
        ("a-acceptable", t(10, 7, "50.00", "100.00"), Rating.ACCEPTABLE),  # ROI 50
        ("b-excellent-free", t(10, 10, "5.00", "0"), Rating.EXCELLENT),  # unbounded
        ("c-good", t(10, 9, "100.00", "100.00"), Rating.GOOD),  # ROI 100
        ("d-excellent", t(10, 10, "300.00", "100.00"), Rating.EXCELLENT),  # ROI 300
        ("e-new", t(9, 9, "900.00", "1.00"), Rating.INSUFFICIENT_DATA),  # ROI 90,000
        ("f-poor-free", t(10, 6, "5.00", "0"), Rating.POOR),  # unbounded, rate 0.6
        ("g-poor-nothing", t(10, 10, "0", "0"), Rating.POOR),  # no ROI, saved nothing
        ("h-poor", t(10, 6, "40.00", "100.00"), Rating.POOR),  # ROI 40
        ("i-failed", t(10, 10, "-10.00", "100.00"), Rating.FAILED),  # ROI -10
        ("j-failed", t(10, 2, "-80.00", "100.00"), Rating.FAILED),  # ROI -80
    ]
    return Analytics(
        GENERATED_AT,
        Window.parse(None, TODAY),
        10,
        tuple(pattern(pattern_id, totals, rating) for pattern_id, totals, rating in cases),
    )


def test_top_performers_are_only_acceptable_or_better_best_roi_first() -> None:
    """Unbounded first, then by ROI; never poor, failed or insufficient_data."""
    analytics = every_rating()
    top = analytics.top_performers(10)
    assert [p.pattern_id for p in top] == [
        "b-excellent-free",
        "d-excellent",
        "c-good",
        "a-acceptable",
    ]
    assert all(p.rating in PERFORMING for p in top)
    document = json_document(analytics, Request("top_performers", "json"))
    assert document["top_performers"] == [p.pattern_id for p in top]
    assert [p["pattern_id"] for p in document["patterns"]] == document["top_performers"]


def test_underperformers_are_exactly_poor_and_failed_lowest_roi_first() -> None:
    """Failed and poor only, from the biggest loss up; unbounded ROI last."""
    analytics = every_rating()
    under = analytics.underperformers(10)
    assert [p.pattern_id for p in under] == [
        "j-failed",  # -80
        "i-failed",  # -10
        "g-poor-nothing",  # nothing spent or saved: ranked as ROI 0
        "h-poor",  # 40
        "f-poor-free",  # unbounded
    ]
    assert {p.pattern_id for p in under} == {
        p.pattern_id for p in analytics.patterns if p.rating in UNDERPERFORMING
    }


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_limit_cuts_both_lists(limit: int) -> None:
    """--limit N keeps the first N of each list, in order."""
    analytics = every_rating()
    assert analytics.top_performers(limit) == analytics.top_performers(10)[:limit]
    assert analytics.underperformers(limit) == analytics.underperformers(10)[:limit]
    text = render(analytics, Request("summary", limit=limit))
    assert text.count("   Rating: ") == 2 * limit
    assert f"{limit}. Pattern: " in text
    assert f"{limit + 1}. Pattern: " not in text


def test_unbounded_and_unspent_roi_are_shown_as_words() -> None:
    """Nothing spent: `unbounded (nothing spent)` if it saved, `n/a (nothing spent)` if not."""
    text = render(every_rating(), Request("summary"))
    assert "1. Pattern: b-excellent-free\n" in text
    assert "   ROI: unbounded (nothing spent)\n" in text
    assert "   ROI: n/a (nothing spent)\n" in text


def test_extreme_but_valid_amounts_render_exactly_in_every_format() -> None:
    """Tiny costs give huge ROI; JSON keeps positional decimals that the schema accepts."""
    tiny = Totals(
        executions=10,
        successful_executions=10,
        time_saved_seconds=Decimal("0E-7"),
        cost_saved_usd=Decimal("1E-7"),
        investment_usd=Decimal("1E-40"),
        estimated_cost_usd=Decimal("1000000"),
    )
    analytics = Analytics(
        GENERATED_AT, Window.parse(None, TODAY), 10, (pattern("tiny", tiny, Rating.EXCELLENT),)
    )
    for kind in ("text", "csv", "markdown"):
        assert "tiny" in render(analytics, Request("summary", kind))
    document = json.loads(render(analytics, Request("summary", "json")))
    VALIDATOR.validate(document)
    (entry,) = document["patterns"]
    assert entry["cost_saved_usd"] == "0.0000001"
    assert entry["time_saved_seconds"] == "0.0000000"
    assert entry["investment_usd"] == "0." + "0" * 39 + "1"
    assert entry["roi_percentage"] == "1" + "0" * 35 + ".000000"
