"""worker.roi.tracking_report and the summary's blocks in worker.roi.report: month to date and
snapshots rendered from pure figures, in every format."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from worker.roi.analytics import Analytics, PatternAnalytics
from worker.roi.methodology import Rating, Totals, Trend, Window, rate
from worker.roi.month_to_date import MonthToDate, month_spans
from worker.roi.report import Request, render
from worker.roi.snapshots import (
    BASELINE,
    LatestSnapshot,
    PatternWindows,
    SnapshotStatus,
    WindowKey,
    build_snapshots,
)
from worker.roi.tracking import Tracking
from worker.roi.tracking_report import (
    CSV_HEADER,
    SnapshotsView,
    month_to_date_headline,
    render_snapshots,
    summary_text,
)

D = Decimal
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
DAY0 = date(2026, 1, 1)


def mtd(saved: str, previous: str) -> MonthToDate:
    return MonthToDate(month_spans(NOW), D(saved), 40, D(previous), 30, D("2400"))


def test_headline_says_up_down_or_nothing() -> None:
    assert month_to_date_headline(mtd("950", "800")) == (
        "Saved $950.00 this month (up 18.8 % on the same days of last month); "
        "projected month-end $3,100.00, annual $29,200.00"
    )
    assert "(down 50.0 % on the same days" in month_to_date_headline(mtd("400", "800"))
    assert "(nothing saved on the same days of last month)" in month_to_date_headline(
        mtd("400", "0")
    )
    assert month_to_date_headline(mtd("-12.345", "0")).startswith("Saved -$12.35 this month")


def latest(status: SnapshotStatus, day: int = 30) -> LatestSnapshot:
    return LatestSnapshot(day, DAY0, DAY0 + timedelta(days=29), status)


TRACKING = Tracking(
    month_to_date=mtd("950", "800"),
    latest={
        "b-fine": latest(SnapshotStatus.ON_TRACK, 60),
        "a-loser": latest(SnapshotStatus.OFF_TRACK),
        "c-risky": latest(SnapshotStatus.AT_RISK),
    },
)


def test_summary_lists_statuses_worst_first_and_counts_them() -> None:
    lines = summary_text(TRACKING, ["b-fine", "new", "c-risky", "a-loser"], limit=3)
    assert lines[0] == "MONTH TO DATE (UTC calendar month)"
    assert lines[1].startswith("Saved $950.00 this month")
    start = lines.index(
        "SNAPSHOTS (latest 30-day window at day 30, 60 or 90 against the first 7 days)"
    )
    assert lines[start + 1 :] == [
        "off_track 1, at_risk 1, insufficient_data 0, on_track 1; not yet at day 30: 1",
        "  a-loser: OFF TRACK (day 30: 2026-01-01 to 2026-01-30)",
        "  c-risky: AT RISK (day 30: 2026-01-01 to 2026-01-30)",
        "  b-fine: ON TRACK (day 60: 2026-01-01 to 2026-01-30)",
        "  ... 1 more: roi-worker report --snapshots",
    ]


def analytics() -> Analytics:
    totals = Totals(executions=20, successful_executions=20, cost_saved_usd=D(10))
    pattern = PatternAnalytics(
        "b-fine", totals, None, rate(totals), None, Trend.STABLE, None, None, None, None
    )
    return Analytics(NOW, Window(None, NOW.date()), 10, (pattern,))


def test_the_summary_shows_the_blocks_in_text_json_and_markdown_only() -> None:
    found = analytics()
    text = render(found, Request("summary"), tracking=TRACKING)
    assert text.endswith("  b-fine: ON TRACK (day 60: 2026-01-01 to 2026-01-30)\n")
    assert "\n\nMONTH TO DATE (UTC calendar month)\n" in text
    assert "MONTH TO DATE" not in render(found, Request("summary"))
    assert "MONTH TO DATE" not in render(found, Request("top_performers"), tracking=TRACKING)
    markdown = render(found, Request("summary", "markdown"), tracking=TRACKING)
    assert "\n## Month to date\n\n**Saved $950.00 this month (up 18.8 %" in markdown
    assert "- b-fine: ON TRACK (day 60: " in markdown
    document = json.loads(render(found, Request("summary", "json"), tracking=TRACKING))
    assert document["month_to_date"]["cost_saved_usd"] == "950"
    assert document["month_to_date"]["projected_month_end_usd"] == "3100.000000"
    assert document["month_to_date"]["change_percentage"] == "18.750000"
    assert document["month_to_date"]["previous_end"] == "2026-02-10T12:00:00Z"
    assert document["latest_snapshots"] == [
        {
            "pattern_id": "b-fine",
            "day": 60,
            "first_day": "2026-01-01",
            "last_day": "2026-01-30",
            "status": "on_track",
        }
    ]
    bare = json.loads(render(found, Request("summary", "json")))
    assert bare["month_to_date"] is None
    assert bare["latest_snapshots"] is None
    csv_text = render(found, Request("summary", "csv"), tracking=TRACKING)
    assert "Saved" not in csv_text


def view() -> SnapshotsView:
    base = Totals(
        executions=70, successful_executions=70, cost_saved_usd=D(700), investment_usd=D(70)
    )
    window = Totals(
        executions=300, successful_executions=282, cost_saved_usd=D(2610), investment_usd=D(300)
    )
    windows = PatternWindows("p", DAY0, {BASELINE: base, WindowKey(30, 30): window})
    today = DAY0 + timedelta(days=45)
    return SnapshotsView({"p": build_snapshots(windows, today)}, NOW, today, None, 10)


def test_snapshots_text() -> None:
    text = render_snapshots(view(), "text")
    assert "p: day 0 2026-01-01, latest status at_risk\n" in text
    assert "  Day 30: 2026-01-01 to 2026-01-30, AT RISK\n" in text
    assert "    vs baseline: success rate -6.0 pp, saved per execution -$1.30 (-13.0 %)" in text
    assert "  Day 60: 2026-01-31 to 2026-03-01: pending, complete on 2026-03-02\n" in text


def test_snapshots_csv_and_json_carry_exact_sums() -> None:
    rows = list(csv.DictReader(io.StringIO(render_snapshots(view(), "csv"))))
    assert tuple(rows[0]) == CSV_HEADER
    assert [r["label"] for r in rows] == ["baseline", "day_30", "day_60", "day_90"]
    day30 = rows[1]
    assert (day30["status"], day30["rating"], day30["cost_saved_usd"]) == (
        "at_risk",
        "good",
        "2610",
    )
    assert day30["success_rate_vs_baseline"] == "-0.060000"
    assert rows[2]["complete"] == "false"
    assert rows[2]["executions"] == ""
    document = json.loads(render_snapshots(view(), "json"))
    pattern = document["patterns"][0]
    assert pattern["latest_status"] == "at_risk"
    assert pattern["snapshots"][0]["figures"]["cost_saved_usd"] == "2610"
    assert pattern["snapshots"][0]["vs_baseline"]["average_cost_saved_percentage"] == "-13.000000"
    assert pattern["snapshots"][1]["status"] is None
    assert pattern["baseline"]["rating"] == Rating.EXCELLENT.value


def test_snapshots_markdown_has_a_table_per_pattern() -> None:
    markdown = render_snapshots(view(), "markdown")
    assert markdown.startswith("# Pattern snapshots\n")
    assert "| Day 30 (2026-01-01 to 2026-01-30) | 30 | at_risk | 300 | 94.0 % |" in markdown
    assert "| Day 90 (2026-03-02 to 2026-03-31) | 30 | pending until 2026-04-01 |" in markdown
