"""docs/roi-methodology.md: the worked examples of Snapshots and Month to date, recomputed by
worker.roi.snapshots and worker.roi.month_to_date."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tests.unit.roi.test_methodology_doc import tables
from worker.roi.formatting import TENTH, fraction_as_percent, number, percent, usd
from worker.roi.methodology import Totals, rate
from worker.roi.month_to_date import MonthToDate, month_spans
from worker.roi.report_document import PLACES
from worker.roi.snapshots import Deltas, snapshot_status, success_rate_fell
from worker.roi.tracking_report import SIX_PLACES, month_to_date_headline


def money(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


def test_snapshot_examples_get_their_deltas_margin_and_status() -> None:
    [rows] = tables("Worked example: snapshots")
    baseline = Totals(
        executions=70,
        successful_executions=70,
        cost_saved_usd=Decimal(700),
        investment_usd=Decimal(70),
    )
    assert len(rows) == 4
    for row in rows:
        runs = int(row["runs"])
        window = Totals(
            executions=runs,
            successful_executions=int(row["successes"]),
            cost_saved_usd=money(row["saved"]),
            investment_usd=Decimal(runs),  # each run costs $1
        )
        deltas = Deltas.between(window, 30, baseline, 7)
        assert deltas.success_rate is not None
        assert deltas.average_cost_saved_percentage is not None
        assert window.average_cost_saved_usd is not None
        assert fraction_as_percent(window.success_rate) == row["rate"]
        assert usd(window.average_cost_saved_usd) == row["per run"]
        assert rate(window).value == row["rating"]
        shift = f"{number(100 * deltas.success_rate, TENTH)} pp, "
        shift += f"{number(deltas.average_cost_saved_percentage)} %"
        assert shift == row["vs baseline"]
        n0, n1 = baseline.executions, window.executions
        p = Decimal(baseline.successful_executions + window.successful_executions) / (n0 + n1)
        margin = (
            Decimal("1.959963984540054")
            * (p * (1 - p) * (Decimal(1) / n0 + Decimal(1) / n1)).sqrt()
        )
        assert f"{number(100 * margin, TENTH)} pp" == row["margin"]
        assert f"`{snapshot_status(baseline, window).value}`" == row["status"]
    assert success_rate_fell(baseline, Totals(executions=300, successful_executions=282))


def test_month_to_date_examples_project_as_documented() -> None:
    [rows] = tables("Worked example: month to date")
    for row in rows:
        now = datetime.fromisoformat(row["now (UTC)"]).replace(tzinfo=UTC)
        spans = month_spans(now)
        figures = MonthToDate(
            spans, money(row["MTD"]), 0, money(row["previous"]), 0, money(row["last 30 days"])
        )
        start, end = spans.previous.start, spans.previous.end
        assert row["previous span"].startswith(f"{start:%m-%d %H:%M} to {end:%m-%d %H:%M}")
        change = figures.change_percentage
        if change is None:
            assert row["change"] == "none"
        else:
            direction = "up" if change >= 0 else "down"
            assert row["change"] == f"{direction} {percent(abs(change))}"
        assert row["elapsed days"].split()[0] == format(spans.elapsed_days.normalize(), "f")
        assert usd(figures.projected_month_end_usd) == row["month-end"]
        assert usd(figures.projected_annual_usd) == row["annual"]
        assert month_to_date_headline(figures).startswith(f"Saved {row['MTD']} this month (")


def test_the_snapshot_csv_rounds_like_the_report_document() -> None:
    assert SIX_PLACES == PLACES
