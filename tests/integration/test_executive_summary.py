"""The executive summary through its doors, on a stored history (tests/integration/history.py):
`roi-worker report --executive --format pdf` read back with pdftotext shows the figures of
`roi-worker report --format json` over the same month, on one page; GET
/api/roi-tracking/executive-summary answers each format with its media type."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.api_harness import ApiProcess
from tests.cli_runner import RoiWorker
from tests.fixtures.services import Services
from tests.integration.history import Run, read_only_api, store_history
from worker.roi.executive import LISTED
from worker.roi.formatting import CENT, TENTH, fraction_as_percent, number, round_half_up, usd
from worker.roi.month_to_date import MonthToDate, month_spans
from worker.roi.report_document import PLACES

ROI = "/api/roi-tracking"
NOW = datetime.now(UTC).replace(microsecond=0)
PDFTOTEXT = shutil.which("pdftotext")
PDFINFO = shutil.which("pdfinfo")


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
        services, database_url, tmp_path_factory.mktemp("executive") / "api.log"
    ) as process:
        yield process


def pdf_text(path: Path) -> str:
    """The PDF's text in reading layout, as poppler's pdftotext gives it."""
    assert PDFTOTEXT is not None, "pdftotext is missing: apt-get install poppler-utils"
    return subprocess.run(
        [PDFTOTEXT, "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def page_count(path: Path) -> int:
    assert PDFINFO is not None, "pdfinfo is missing: apt-get install poppler-utils"
    info = subprocess.run([PDFINFO, str(path)], capture_output=True, text=True, check=True)
    found = re.search(r"^Pages:\s+(\d+)$", info.stdout, re.MULTILINE)
    assert found is not None, info.stdout
    return int(found[1])


def dollars(text: str, label: str) -> Decimal:
    """The amount shown after `label` on the page: `Projected month-end   $1,234.56`."""
    found = re.search(re.escape(label) + r"\s+(-?)\$([0-9,]+\.[0-9]{2})", text)
    assert found is not None, (label, text)
    return Decimal(found[1] + found[2].replace(",", ""))


def month_report(roi_worker: RoiWorker, database_url: str) -> dict[str, Any]:
    """`roi-worker report --since <first of this month> --format json`: the report over the
    executive summary's period (its month_to_date is the summary's at any window)."""
    first = datetime.now(UTC).date().replace(day=1)
    result = roi_worker(database_url, "report", "--since", str(first), "--format", "json")
    assert result.code == 0, result.err
    document: dict[str, Any] = json.loads(result.out)
    return document


def projected_month_end(report: dict[str, Any], moment: datetime) -> Decimal:
    """What the summary projects at `moment` from the report's month to date, in cents."""
    mtd = report["month_to_date"]
    figures = MonthToDate(
        month_spans(moment),
        Decimal(mtd["cost_saved_usd"]),
        mtd["executions"],
        Decimal(mtd["previous_cost_saved_usd"]),
        mtd["previous_executions"],
        Decimal(mtd["trailing_30_days_cost_saved_usd"]),
    )
    return round_half_up(round_half_up(figures.projected_month_end_usd, PLACES), CENT)


@pytest.mark.usefixtures("stored")
def test_the_pdf_shows_the_reports_figures_on_one_page(
    roi_worker: RoiWorker, database_url: str, tmp_path: Path
) -> None:
    """Every figure of the page, read back with pdftotext, is the report's over the month: the
    month to date and its projections, executions, hours saved, success rate, and the top
    performers and underperformers in the report's order with rating and recommendation."""
    path = tmp_path / "summary.pdf"
    before = datetime.now(UTC)
    report = month_report(roi_worker, database_url)
    written = roi_worker(
        database_url, "report", "--executive", "--format", "pdf", "--output", str(path)
    )
    after = datetime.now(UTC)
    assert written.code == 0, written.err
    assert written.out.startswith(f"wrote {path}: executive summary of ")
    assert path.read_bytes().startswith(b"%PDF-")
    assert page_count(path) == 1
    text = pdf_text(path)
    mtd, overall = report["month_to_date"], report["overall"]
    assert f"{usd(Decimal(mtd['cost_saved_usd']))} saved this month" in text
    assert dollars(text, "Saved this month (net)") == round_half_up(
        Decimal(mtd["cost_saved_usd"]), CENT
    )
    change = mtd["change_percentage"]
    assert (change is None) == ("n/a (saved " in text)
    if change is not None:
        direction = "up" if Decimal(change) >= 0 else "down"
        assert f"{direction} {number(abs(Decimal(change)), TENTH)} %" in text
    bounds = sorted(projected_month_end(report, moment) for moment in (before, after))
    assert bounds[0] <= dollars(text, "Projected month-end") <= bounds[1]
    assert dollars(text, "Projected annual (last 30 days x 365 / 30)") == round_half_up(
        Decimal(mtd["projected_annual_usd"]), CENT
    )
    assert f"{overall['executions']:,} ({overall['successful_executions']:,} successful)" in text
    hours = round_half_up(Decimal(overall["time_saved_seconds"]) / 3600, PLACES)
    assert f"{number(hours, TENTH)} hours" in text
    success = overall["success_rate"]
    assert fraction_as_percent(None if success is None else Decimal(success)) in text
    by_id = {p["pattern_id"]: p for p in report["patterns"]}
    listed = [*report["top_performers"][:LISTED], *report["underperformers"][:LISTED]]
    assert report["top_performers"]  # the history has both kinds
    assert report["underperformers"]
    places = []
    for pattern_id in listed:
        shown = by_id[pattern_id]
        row = re.search(
            rf"^\d\s+{re.escape(pattern_id)}\s+{shown['rating']}\s+.*"
            rf"{re.escape(usd(Decimal(shown['cost_saved_usd'])))}$",
            text,
            re.MULTILINE,
        )
        assert row is not None, (pattern_id, text)
        places.append(row.start())
        assert f"Recommendation: {shown['recommendation']}" in text[row.end() :]
    assert places == sorted(places)  # best first, then worst first, as the report ranks them


@pytest.mark.usefixtures("stored")
def test_the_json_form_is_the_reports_document(roi_worker: RoiWorker, database_url: str) -> None:
    """`report --executive --format json` takes its blocks from the report's: month to date,
    overall and the two rankings."""
    report = month_report(roi_worker, database_url)
    result = roi_worker(database_url, "report", "--executive", "--format", "json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    # The clock moves between the two commands: these follow it (an execution of the history
    # may leave the previous month's span or the trailing 30 days in between).
    moving = {
        "as_of",
        "previous_end",
        "elapsed_days",
        "projected_month_end_usd",
        "previous_cost_saved_usd",
        "previous_executions",
        "change_percentage",
        "trailing_30_days_cost_saved_usd",
        "projected_annual_usd",
    }
    assert {k: v for k, v in summary["cost_savings"].items() if k not in moving} == {
        k: v for k, v in report["month_to_date"].items() if k not in moving
    }
    for name in ("executions", "successful_executions", "success_rate", "time_saved_seconds"):
        assert summary["productivity"][name] == report["overall"][name]
    assert [p["pattern_id"] for p in summary["top_performers"]] == report["top_performers"][:3]
    assert [p["pattern_id"] for p in summary["underperformers"]] == report["underperformers"][:3]
    text = roi_worker(database_url, "report", "--executive")
    assert text.code == 0, text.err
    assert "COST SAVINGS" in text.out
    assert "PRODUCTIVITY" in text.out


def fetch(
    api: ApiProcess, path: str, token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers by lower-case name, raw body) of a GET: a PDF is bytes, not text."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"{api.base_url}{path}", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def test_the_endpoint_answers_each_format_with_its_media_type(
    api: ApiProcess, tmp_path: Path
) -> None:
    """JSON, PDF (an attachment, one page), CSV (an attachment) and Markdown, each with its
    media type, all of the same month."""
    month = f"{datetime.now(UTC):%Y-%m}"
    status, headers, body = fetch(api, f"{ROI}/executive-summary")
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    summary = json.loads(body)
    assert summary["period"]["name"] == "month"
    saved = usd(Decimal(summary["cost_savings"]["cost_saved_usd"]))

    status, headers, body = fetch(api, f"{ROI}/executive-summary?period=month&format=pdf")
    assert status == 200, body
    assert headers["content-type"] == "application/pdf"
    assert headers["content-disposition"] == (
        f'attachment; filename="roi-executive-summary-{month}.pdf"'
    )
    path = tmp_path / "api.pdf"
    path.write_bytes(body)
    assert page_count(path) == 1
    assert f"{saved} saved this month" in pdf_text(path)

    status, headers, body = fetch(api, f"{ROI}/executive-summary?format=csv")
    assert status == 200, body
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-disposition"] == (
        f'attachment; filename="roi-executive-summary-{month}.csv"'
    )
    rows = {(b, f): v for b, f, v in list(csv.reader(io.StringIO(body.decode())))[1:]}
    assert rows["cost_savings", "cost_saved_usd"] == summary["cost_savings"]["cost_saved_usd"]

    status, headers, body = fetch(api, f"{ROI}/executive-summary?format=md")
    assert status == 200, body
    assert headers["content-type"] == "text/markdown; charset=utf-8"
    assert "content-disposition" not in headers
    assert body.decode().startswith("# Automation ROI summary\n")
    assert f"**{saved} saved this month**" in body.decode()


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("period=week", ["query", "period"]),
        ("format=docx", ["query", "format"]),
        ("format=markdown", ["query", "format"]),
        ("min_executions=0", ["query", "min_executions"]),
    ],
)
def test_bad_parameters_get_422s(api: ApiProcess, query: str, loc: list[str]) -> None:
    """Like every read: a parameter that breaks its rule is named in a 422."""
    status, body = api.get(f"{ROI}/executive-summary?{query}")
    assert status == 422, body
    assert body["detail"][0]["loc"] == loc


READ_TOKEN = "executive-reader-0123456789"


def test_reads_need_a_token_when_read_tokens_are_set(
    services: Services, database_url: str, stored: list[Run], tmp_path: Path
) -> None:
    """Like the other reads: with ROI_API_READ_TOKENS set, no token is a 401, a read token
    gets the PDF."""
    del stored
    env = {
        "ROI_KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap_servers,
        "ROI_DATABASE_URL": database_url,
        "ROI_API_WRITES": "false",
        "ROI_API_READ_TOKENS": READ_TOKEN,
    }
    process = ApiProcess(env, tmp_path / "api.log")
    try:
        process.wait_up("/readyz")
        path = f"{ROI}/executive-summary?format=pdf"
        assert fetch(process, path)[0] == 401
        status, headers, body = fetch(process, path, READ_TOKEN)
        assert status == 200, body
        assert headers["content-type"] == "application/pdf"
    finally:
        process.close()
