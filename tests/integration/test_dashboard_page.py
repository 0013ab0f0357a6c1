"""The dashboard page and its JSON (worker/api/pages/, worker/api/routes/tracking.py) over a real
`roi-worker api` and PostgreSQL, on a stored history (tests/integration/history.py): the page's
figures are the JSON endpoints' strings, month to date and the latest snapshots are the report's,
a pattern's page and its 404, and the live stream's events."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import psycopg
import pytest

from tests.api_harness import ApiProcess
from tests.cli_runner import RoiWorker
from tests.fixtures.services import Services
from tests.integration.history import (
    EXPECTED_LATEST,
    Run,
    read_only_api,
    store_history,
)

ROI = "/api/roi-tracking"
NOW = datetime.now(UTC).replace(microsecond=0)
HERO = {  # data-figure -> the month-to-date field it shows
    "mtd-cost-saved": "cost_saved_usd",
    "mtd-change-percentage": "change_percentage",
    "projected-annual": "projected_annual_usd",
}
COLUMNS = {  # data-column -> the summary field it shows
    "pattern_id": "pattern_id",
    "rating": "rating",
    "success_rate": "success_rate",
    "wilson_lower_bound": "wilson_lower_bound",
    "roi_percentage": "roi_percentage",
    "cost_saved_usd": "cost_saved_usd",
    "executions": "executions",
    "trend": "trend",
}


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
        services,
        database_url,
        tmp_path_factory.mktemp("dashboard") / "api.log",
        {"ROI_DASHBOARD_REFRESH_SECONDS": "1"},
    ) as process:
        yield process


class Figures(HTMLParser):
    """The `data-` attributes of a page: figures by name, table rows by pattern, the ids."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.rows: dict[str, dict[str, str]] = {}
        self.ids: set[str] = set()
        self.underperformers: list[str] = []
        self._row: str | None = None
        self._in_underperformers = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if "id" in found:
            self.ids.add(found["id"])
            if found["id"] == "underperformers":
                self._in_underperformers = True
        if "data-figure" in found and "data-value" in found:
            self.figures[found["data-figure"]] = found["data-value"]
        if tag == "tr" and "data-pattern-id" in found:
            self._row = found["data-pattern-id"]
            self.rows[self._row] = {}
        if tag == "li" and self._in_underperformers and "data-pattern-id" in found:
            self.underperformers.append(found["data-pattern-id"])
        if self._row is not None and "data-column" in found:
            self.rows[self._row][found["data-column"]] = found.get("data-value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None


def page(api: ApiProcess, path: str, expected: int = 200) -> tuple[Figures, dict[str, str]]:
    status, body, headers = api.request("GET", path)
    assert status == expected, (path, body)
    assert isinstance(body, str)
    parsed = Figures()
    parsed.feed(body)
    return parsed, headers


def ok(api: ApiProcess, path: str) -> Any:
    status, body = api.get(path)
    assert status == 200, (path, body)
    return body


def shown(value: Any) -> str:
    return "" if value is None else str(value)


def test_the_dashboard_shows_the_api_figures_as_strings(api: ApiProcess) -> None:
    """Every hero figure and table cell carries the JSON endpoints' exact string, the
    underperformers are the API's, and the page has its security headers."""
    parsed, headers = page(api, "/")
    mtd = ok(api, f"{ROI}/month-to-date")
    summary = ok(api, f"{ROI}/summary?limit=1000")
    latest = ok(api, f"{ROI}/latest-snapshots")
    under = ok(api, f"{ROI}/underperformers")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert {
        "dashboard",
        "read-at",
        "savings-chart",
        "patterns-table",
        "rating-filter",
    } <= parsed.ids
    for figure, field in HERO.items():
        assert parsed.figures[figure] == shown(mtd[field]), figure
    assert parsed.figures["total-executions"] == str(summary["overall"]["executions"])
    statuses = {entry["pattern_id"]: entry["status"] for entry in latest["patterns"]}
    assert set(parsed.rows) == {p["pattern_id"] for p in summary["patterns"]}
    for pattern in summary["patterns"]:
        row = parsed.rows[pattern["pattern_id"]]
        for column, field in COLUMNS.items():
            assert row[column] == shown(pattern[field]), (pattern["pattern_id"], column)
        assert row["snapshot_status"] == shown(statuses.get(pattern["pattern_id"]))
    assert parsed.underperformers == [p["pattern_id"] for p in under["patterns"]]


def test_month_to_date_and_latest_snapshots_are_the_reports(
    api: ApiProcess, roi_worker: RoiWorker, database_url: str
) -> None:
    """The two endpoints answer the report summary's blocks (the stored runs are a minute old
    at least, so only the time-dependent projection may differ between the two reads)."""
    result = roi_worker(database_url, "report", "--summary", "--format", "json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    mtd = ok(api, f"{ROI}/month-to-date")
    for field in ("cost_saved_usd", "executions", "previous_cost_saved_usd", "change_percentage"):
        assert mtd[field] == document["month_to_date"][field], field
    latest = ok(api, f"{ROI}/latest-snapshots")
    reached = [e for e in document["latest_snapshots"] if e["status"] is not None]
    assert latest["patterns"] == sorted(reached, key=lambda e: e["pattern_id"])
    assert {e["pattern_id"]: e["status"] for e in latest["patterns"]} == {
        p: s for p, s in EXPECTED_LATEST.items() if s is not None
    }


def test_savings_of_one_pattern_add_up_to_its_net_savings(api: ApiProcess) -> None:
    """`pattern_id` narrows the savings series to one pattern: its running total over its
    whole history is the pattern's net savings; an unknown pattern is a 404."""
    report = ok(api, f"{ROI}/pattern/steady")["pattern"]
    first = report["first_executed_at"][:10]
    series = ok(api, f"{ROI}/savings?period=day&from={first}&pattern_id=steady")
    assert series["periods"][-1]["cumulative_cost_saved_usd"] == report["cost_saved_usd"]
    assert series["periods"][-1]["cumulative_executions"] == report["executions"]
    assert api.get(f"{ROI}/savings?pattern_id=nobody")[0] == 404


def test_a_pattern_page_shows_its_report_and_an_unknown_one_is_404(api: ApiProcess) -> None:
    """The pattern page has every section, its figures are /report/{id}'s strings; a pattern
    without executions gets the 404 page."""
    parsed, _ = page(api, "/patterns/slipping")
    report = ok(api, f"{ROI}/report/slipping")["pattern"]
    assert {
        "pattern-history-chart",
        "outcomes-chart",
        "execution-time",
        "quality",
        "snapshots",
        "recent-executions",
    } <= parsed.ids
    assert parsed.figures["cost-saved"] == report["cost_saved_usd"]
    assert parsed.figures["executions"] == str(report["executions"])
    assert parsed.figures["p95"] == report["execution_time_percentiles"]["p95"]
    assert parsed.figures["latest-status"] == "at_risk"
    missing, _ = page(api, "/patterns/nobody", expected=404)
    assert "not-found" in missing.ids


def test_the_fragments_are_the_pages_sections(api: ApiProcess) -> None:
    """What the script swaps in carries the same figures as the page."""
    parsed, _ = page(api, "/fragments/dashboard")
    summary = ok(api, f"{ROI}/summary?limit=1000")
    assert parsed.figures["total-executions"] == str(summary["overall"]["executions"])
    assert {"hero", "patterns-rows", "underperformers", "read-at"} <= parsed.ids
    assert "pattern-figures" in page(api, "/fragments/patterns/steady")[0].ids


def test_the_live_stream_sends_an_event_when_the_summaries_change(
    api: ApiProcess, database_url: str
) -> None:
    """An event at once, then comments while nothing changes, then an event when a summary
    is updated (the next check, ROI_DASHBOARD_REFRESH_SECONDS = 1 here)."""
    request = urllib.request.Request(f"{api.base_url}{ROI}/live")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as stream:  # noqa: S310
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        messages = _messages(stream)
        assert next(messages) == "retry: 2000"
        first = next(messages)
        assert first.startswith("event: summaries\ndata: ")
        assert next(messages) == ": waiting"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE pattern_roi_summary SET last_updated = %s WHERE pattern_id = 'steady'",
                (datetime.now(UTC) + timedelta(seconds=1),),
            )
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        changed = None
        while datetime.now(UTC) < deadline:
            message = next(messages)
            if message.startswith("event: summaries"):
                changed = message
                break
        assert changed is not None
        assert (
            json.loads(changed.split("data: ", 1)[1])["version"]
            != json.loads(first.split("data: ", 1)[1])["version"]
        )


def _messages(stream: Any) -> Iterator[str]:
    """The stream's messages (the lines between blank lines), read as they arrive."""
    lines: list[str] = []
    for raw in stream:
        line = raw.decode().rstrip("\n")
        if line:
            lines.append(line)
        elif lines:
            yield "\n".join(lines)
            lines = []


def test_static_files_come_from_the_api(api: ApiProcess) -> None:
    """The page's script, styles and Plotly are answered by the API itself."""
    for path in ("/static/dashboard.js", "/static/dashboard.css", "/static/vendor/plotly.min.js"):
        status, _, headers = api.request("GET", path)
        assert status == 200, path
        assert "max-age" in headers["cache-control"]
