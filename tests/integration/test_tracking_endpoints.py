"""Snapshots, month to date and the savings series through their doors: `roi-worker report
--snapshots`, the summary's blocks, GET /api/roi-tracking/snapshots/{id} and /savings, on a
stored history (tests/integration/history.py)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from tests.api_harness import ApiProcess
from tests.cli_runner import RoiWorker
from tests.fixtures.services import Services
from tests.integration.history import (
    EXPECTED_LATEST,
    Run,
    read_only_api,
    store_history,
    totals_of_days,
)
from worker.metrics import PatternCollector
from worker.roi.methodology import Totals
from worker.roi.month_to_date import MonthToDate, month_spans
from worker.roi.savings_series import MAX_PERIODS
from worker.roi.tracking_report import CSV_HEADER

ROI = "/api/roi-tracking"
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()


@pytest.fixture(scope="module")
def stored(database_url: str) -> list[Run]:
    return store_history(database_url, NOW)


@pytest.fixture(scope="module")
def api(
    services: Services,
    database_url: str,
    stored: list[Run],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiProcess]:
    del stored
    with read_only_api(
        services, database_url, tmp_path_factory.mktemp("tracking") / "api.log"
    ) as process:
        yield process


def ok(api: ApiProcess, path: str) -> Any:
    status, body = api.get(path)
    assert status == 200, (path, body)
    return body


# --------------------------------------------------------------------------- snapshots


def test_snapshots_endpoint_is_the_reports_document(
    api: ApiProcess, roi_worker: RoiWorker, database_url: str, stored: list[Run]
) -> None:
    at = TODAY - timedelta(days=5)
    body = ok(api, f"{ROI}/snapshots/steady?at={at}")
    result = roi_worker(
        database_url, "report", "--snapshots", "--pattern-id", "steady", "--at", str(at),
        "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert [body["pattern"]] == document["patterns"]
    pattern = body["pattern"]
    assert pattern["latest_status"] == "on_track"
    assert [s["label"] for s in pattern["snapshots"]] == ["day_30", "day_60", "day_90", "at"]
    day90 = pattern["snapshots"][2]
    first, last = date.fromisoformat(day90["first_day"]), date.fromisoformat(day90["last_day"])
    expected = totals_of_days(stored, "steady", first, last + timedelta(days=1))
    assert day90["figures"]["executions"] == expected.executions
    assert Decimal(day90["figures"]["cost_saved_usd"]) == expected.cost_saved_usd
    assert day90["previous_label"] == "day_60"
    assert day90["vs_previous"]["success_rate"] == "0.000000"


def test_snapshots_of_a_young_pattern_are_pending(api: ApiProcess) -> None:
    pattern = ok(api, f"{ROI}/snapshots/young")["pattern"]
    assert pattern["latest_status"] is None
    assert pattern["baseline"]["complete"] is True
    assert all(s["complete"] is False and s["status"] is None for s in pattern["snapshots"])
    assert all(s["figures"] is None for s in pattern["snapshots"])


@pytest.mark.parametrize(
    ("path", "status", "loc"),
    [
        (f"{ROI}/snapshots/never-seen", 404, None),
        (f"{ROI}/snapshots/steady?at=2026-02-30", 422, ["query", "at"]),
        (f"{ROI}/snapshots/steady?at=2999-01-01", 422, ["query", "at"]),
        (f"{ROI}/snapshots/steady?at=yesterday", 422, ["query", "at"]),
    ],
)
def test_snapshots_endpoint_errors(
    api: ApiProcess, path: str, status: int, loc: list[str] | None
) -> None:
    answered, body = api.get(path)
    assert answered == status, body
    if loc is not None:
        assert body["detail"][0]["loc"] == loc


@pytest.mark.usefixtures("stored")
def test_cli_snapshots_of_every_pattern_in_each_format(
    roi_worker: RoiWorker, database_url: str
) -> None:
    text = roi_worker(database_url, "report", "--snapshots")
    assert text.code == 0, text.err
    for pattern_id, status in EXPECTED_LATEST.items():
        assert f"{pattern_id}: day 0 " in text.out
        assert f"latest status {status or 'not yet at day 30'}" in text.out
    assert "pending, complete on" in text.out
    table = roi_worker(database_url, "report", "--snapshots", "--format", "csv")
    rows = list(csv.reader(io.StringIO(table.out)))
    assert tuple(rows[0]) == CSV_HEADER
    assert len(rows) == 1 + 4 * len(EXPECTED_LATEST)  # baseline and three snapshots each
    markdown = roi_worker(database_url, "report", "--snapshots", "--format", "markdown")
    assert markdown.out.startswith("# Pattern snapshots")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--snapshots", "--pattern-id", "never-seen"), 1, "no pattern 'never-seen'"),
        (("--snapshots", "--at", "2026-13-01"), 2, "--at: "),
        (("--snapshots", "--at", "2999-01-01"), 2, "is in the future"),
        (("--at", "2026-01-01"), 2, "--at goes with --snapshots"),
        (("--snapshots", "--since", "7d"), 2, "--snapshots goes with"),
        (("--snapshots", "--top-performers"), 2, "--snapshots goes with"),
    ],
)
@pytest.mark.usefixtures("stored")
def test_cli_snapshot_errors_are_one_line(
    roi_worker: RoiWorker, database_url: str, args: tuple[str, ...], code: int, message: str
) -> None:
    result = roi_worker(database_url, "report", *args)
    assert result.code == code
    assert message in result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- summary


def test_summary_shows_month_to_date_and_each_status(
    roi_worker: RoiWorker, database_url: str, stored: list[Run]
) -> None:
    before = datetime.now(UTC)
    document = json.loads(roi_worker(database_url, "report", "--format", "json").out)
    after = datetime.now(UTC)
    mtd = document["month_to_date"]
    possible = set()
    for moment in (before, after):
        span = month_spans(moment).current
        possible.add(
            sum(r.totals.cost_saved_usd for r in stored if span.start <= r.executed_at < span.end)
        )
    assert Decimal(mtd["cost_saved_usd"]) in possible
    assert {p["pattern_id"]: p["status"] for p in document["latest_snapshots"]} == (EXPECTED_LATEST)
    text = roi_worker(database_url, "report").out
    assert "MONTH TO DATE (UTC calendar month)" in text
    assert "this month (" in text
    assert "; projected month-end $" in text
    assert "  losing: OFF TRACK (day 30: " in text
    assert text.index("losing: OFF TRACK") < text.index("steady: ON TRACK")  # worst first
    markdown = roi_worker(database_url, "report", "--format", "markdown").out
    assert "## Month to date" in markdown
    assert "- slipping: AT RISK (day 60: " in markdown
    top = json.loads(roi_worker(database_url, "report", "--top-performers", "--format", "json").out)
    assert top["month_to_date"] is None  # the summary's blocks only


# --------------------------------------------------------------------------- savings


def test_savings_by_day_is_the_daily_net_savings_with_running_totals(
    api: ApiProcess, stored: list[Run]
) -> None:
    first = TODAY - timedelta(days=20)
    body = ok(api, f"{ROI}/savings?period=day&from={first}&to={TODAY}")
    assert len(body["periods"]) == 21
    running = Decimal(0)
    for index, entry in enumerate(body["periods"]):
        day = first + timedelta(days=index)
        assert entry["first_day"] == entry["last_day"] == str(day)
        expected = sum(
            (r.totals.cost_saved_usd for r in stored if r.executed_at.date() == day), Decimal(0)
        )
        running += expected
        assert Decimal(entry["cost_saved_usd"]) == expected
        assert Decimal(entry["cumulative_cost_saved_usd"]) == running


def test_savings_by_week_and_month_cut_their_ends_and_keep_zeros(
    api: ApiProcess, stored: list[Run]
) -> None:
    first, last = TODAY - timedelta(days=400), TODAY
    weeks = ok(api, f"{ROI}/savings?period=week&from={first}&to={last}")["periods"]
    assert weeks[0]["first_day"] == str(first)
    assert all(date.fromisoformat(w["first_day"]).weekday() == 0 for w in weeks[1:])
    assert weeks[-1]["last_day"] == str(last)
    assert weeks[0]["executions"] == 0  # before any history: a zero, not a gap
    months = ok(api, f"{ROI}/savings?period=month&from={first}&to={last}")["periods"]
    assert sum(m["executions"] for m in months) == len(stored)
    assert Decimal(months[-1]["cumulative_cost_saved_usd"]) == sum(
        r.totals.cost_saved_usd for r in stored
    )
    default = ok(api, f"{ROI}/savings")
    assert default["period"] == "day"
    assert default["first_day"] == str(TODAY.replace(day=1))


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("period=year", ["query", "period"]),
        ("from=2026-02-30", ["query", "from"]),
        ("from=1 day ago", ["query", "from"]),
        ("to=2999-01-01", ["query", "to"]),
        (f"from={TODAY}&to={TODAY - timedelta(days=1)}", ["query", "from"]),
        (f"period=day&from={TODAY - timedelta(days=MAX_PERIODS)}", ["query", "from"]),
    ],
)
def test_savings_parameters_get_clear_422s(api: ApiProcess, query: str, loc: list[str]) -> None:
    status, body = api.get(f"{ROI}/savings?{query.replace(' ', '%20')}")
    assert status == 422, body
    assert body["detail"][0]["loc"] == loc
    assert body["detail"][0]["msg"]


def test_the_longest_series_allowed_answers(api: ApiProcess) -> None:
    first = TODAY - timedelta(days=MAX_PERIODS - 1)
    assert len(ok(api, f"{ROI}/savings?period=day&from={first}")["periods"]) == MAX_PERIODS


# --------------------------------------------------------------------------- /metrics


def test_month_to_date_gauges_are_the_figures_of_the_report(
    database_url: str, stored: list[Run]
) -> None:
    """The worker's /metrics families agree with month_to_date at (about) the same instant:
    the stored runs are at least a minute old, so the sums cannot change in between."""
    registry = CollectorRegistry()
    errors = Counter("errors", "database errors", registry=registry)
    collector = PatternCollector(database_url, 10, errors, 10)
    registry.register(collector)
    try:
        scraped = datetime.now(UTC)
        value = registry.get_sample_value
        mtd = value("roi_cost_saved_month_to_date_usd")
        previous = value("roi_cost_saved_previous_month_to_date_usd")
        projected = value("roi_cost_saved_projected_month_end_usd")
        annual = value("roi_cost_saved_projected_annual_usd")
    finally:
        collector.close()
    spans = month_spans(scraped)
    expected = MonthToDate(
        spans,
        sum(
            (r.totals for r in stored if spans.current.start <= r.executed_at), Totals()
        ).cost_saved_usd,
        0,
        sum(
            (
                r.totals
                for r in stored
                if spans.previous.start <= r.executed_at < spans.previous.end
            ),
            Totals(),
        ).cost_saved_usd,
        0,
        sum(
            (r.totals for r in stored if spans.trailing.start <= r.executed_at), Totals()
        ).cost_saved_usd,
    )
    assert mtd == float(expected.cost_saved_usd)
    assert previous == float(expected.previous_cost_saved_usd)
    assert annual == float(expected.projected_annual_usd)
    assert projected == pytest.approx(float(expected.projected_month_end_usd), rel=1e-4)
    assert value("errors_total") == 0
