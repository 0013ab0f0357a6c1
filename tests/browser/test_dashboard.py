"""The dashboard at `/` in headless Chromium, against `roi-worker api` on the known data set
(tests/browser/dataset.py): it loads cleanly and from 127.0.0.1 only, shows the API's figures
exactly, draws its chart, its period selector, sorting and rating filter work with the mouse
and the keyboard, it fits a phone, and it shows a newly stored event without a reload."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import pytest
from playwright.sync_api import Page, Response

from tests.browser import dataset
from tests.browser.conftest import PHONE, Dashboard, Watched, screenshot
from tests.browser.reading import WAIT_SECONDS, shows, tab_to, wait_for_attribute
from tests.helpers import wait_until

ROI: Final = "/api/roi-tracking"
# The hero's figures: data-figure -> the field of GET /month-to-date it shows.
HERO: Final = {
    "mtd-cost-saved": "cost_saved_usd",
    "mtd-change-percentage": "change_percentage",
    "projected-month-end": "projected_month_end_usd",
    "projected-annual": "projected_annual_usd",
}
# The patterns table's columns, each the field of GET /summary's patterns of the same name,
# but snapshot_status: GET /latest-snapshots' status.
COLUMNS: Final = (
    "pattern_id",
    "rating",
    "success_rate",
    "wilson_lower_bound",
    "roi_percentage",
    "cost_saved_usd",
    "executions",
    "snapshot_status",
)
NUMBER_SCALES: Final = {  # how a numeric column may be shown: as is, or a fraction as a percent
    "success_rate": (1, 100),
    "wilson_lower_bound": (1, 100),
    "roi_percentage": (1,),
    "cost_saved_usd": (1,),
    "executions": (1,),
}
# Days each period button plots: the last N days, today included; all time from the data
# set's first day.
PERIOD_DAYS: Final = {"7": 7, "30": 30, "90": 90, "all": dataset.DAYS}
CHART: Final = "#savings-chart"
TABLE_ROWS: Final = """() => Array.from(
    document.querySelectorAll('#patterns-table tr[data-pattern-id]'),
    tr => ({
        id: tr.dataset.patternId,
        visible: tr.checkVisibility(),
        cells: Object.fromEntries(Array.from(
            tr.querySelectorAll('[data-column]'),
            td => [td.dataset.column, {value: td.dataset.value ?? null, text: td.innerText}],
        )),
    }),
)"""


def open_dashboard(page: Page, dashboard: Dashboard) -> Response:
    """Opens `/` and waits for its savings chart to be drawn (marked so, an SVG inside: the
    live refresh may swap the chart's element for a new one)."""
    response = page.goto(dashboard.url("/"))
    assert response is not None
    assert response.status == 200, f"GET / answered {response.status}: {response.text()[:500]}"
    page.locator("main#dashboard").wait_for()
    page.locator(f'{CHART}[data-drawn="true"] svg').first.wait_for()
    return response


def as_text(value: Any) -> str:
    """An API value as the page's data-value carries it: null is ""."""
    return "" if value is None else str(value)


def api_rows(dashboard: Dashboard) -> dict[str, dict[str, str]]:
    """pattern_id -> column -> the API's value, as text (see COLUMNS)."""
    summary = dashboard.json(f"{ROI}/summary?limit=1000")
    assert summary["total"] == len(summary["patterns"])
    latest = dashboard.json(f"{ROI}/latest-snapshots")["patterns"]
    statuses = {entry["pattern_id"]: entry["status"] for entry in latest}
    return {
        pattern["pattern_id"]: {
            column: as_text(
                statuses.get(pattern["pattern_id"])
                if column == "snapshot_status"
                else pattern[column]
            )
            for column in COLUMNS
        }
        for pattern in summary["patterns"]
    }


def table_rows(page: Page) -> list[dict[str, Any]]:
    """The table's rows in document order: id, whether visible, and each cell's data-value
    and text (a cell is a td, or the th heading its row)."""
    rows: list[dict[str, Any]] = page.evaluate(TABLE_ROWS)
    return rows


def visible_ids(page: Page) -> list[str]:
    return [row["id"] for row in table_rows(page) if row["visible"]]


def figure(page: Page, name: str) -> tuple[str, str]:
    """The data-value and the visible text of `[data-figure=name]`, read together: the live
    refresh may swap the element between two separate reads (the month-end projection moves
    every second)."""
    element = page.locator(f'[data-figure="{name}"]')
    value, text = element.evaluate("e => [e.getAttribute('data-value'), e.innerText]")
    assert value is not None, f'[data-figure="{name}"] has no data-value'
    return str(value), str(text)


def test_dashboard_loads_without_errors_or_outside_requests(
    dashboard: Dashboard, page: Watched
) -> None:
    """`/` loads with no console error, no uncaught exception and every request to 127.0.0.1,
    and says when its data was read."""
    open_dashboard(page.page, dashboard)
    assert page.problems() == []
    read_at = page.page.locator("#read-at").get_attribute("data-read-at")
    assert read_at is not None
    assert abs(datetime.fromisoformat(read_at) - datetime.now(UTC)).total_seconds() < 120


def test_hero_figures_are_the_apis_month_to_date(dashboard: Dashboard, page: Watched) -> None:
    """Each hero figure's data-value is GET /month-to-date's string, and its text shows it.

    The month-end projection moves with the clock (month to date / elapsed days), so it must
    lie between two reads of the API made before and after the page's; the others stay put."""
    before = dashboard.json(f"{ROI}/month-to-date")
    open_dashboard(page.page, dashboard)
    shown = {name: figure(page.page, name) for name in HERO}
    after = dashboard.json(f"{ROI}/month-to-date")
    for name, field in HERO.items():
        value, text = shown[name]
        if field == "projected_month_end_usd":
            low, high = sorted((Decimal(before[field]), Decimal(after[field])))
            assert low <= Decimal(value) <= high, (name, value, before[field], after[field])
            assert len(value.partition(".")[2]) == len(after[field].partition(".")[2]), value
        else:
            assert before[field] == after[field], f"{field} moved while the page loaded"
            assert value == as_text(after[field]), (name, value, after[field])
        if value:
            assert shows(text, value), f"{name}: {text!r} does not show {value}"


def test_patterns_table_figures_are_the_apis(dashboard: Dashboard, page: Watched) -> None:
    """The table has a row per pattern of GET /summary; each cell's data-value is the API's
    exact string and its text shows it; the rating comes with its recommendation."""
    open_dashboard(page.page, dashboard)
    expected = api_rows(dashboard)
    recommendations = {
        pattern["pattern_id"]: pattern["recommendation"]
        for pattern in dashboard.json(f"{ROI}/summary?limit=1000")["patterns"]
    }
    rows = table_rows(page.page)
    assert sorted(row["id"] for row in rows) == sorted(expected)
    assert set(expected) == set(dataset.EXPECTED_RATINGS)
    for row in rows:
        api = expected[row["id"]]
        values = {column: cell["value"] for column, cell in row["cells"].items()}
        assert {column: values.get(column) for column in COLUMNS} == api, row["id"]
        for column, scales in NUMBER_SCALES.items():
            text = row["cells"][column]["text"]
            assert shows(text, api[column], scales=scales), (row["id"], column, text)
        rating_text = row["cells"]["rating"]["text"]
        assert api["rating"].replace("_", " ") in rating_text.lower().replace("_", " ")
        assert recommendations[row["id"]] in rating_text, (row["id"], rating_text)
    ratings = {pattern_id: api["rating"] for pattern_id, api in expected.items()}
    assert ratings == dataset.EXPECTED_RATINGS


def test_total_executions_is_the_apis(dashboard: Dashboard, page: Watched) -> None:
    """The executions figure is GET /summary's overall executions."""
    open_dashboard(page.page, dashboard)
    value, text = figure(page.page, "total-executions")
    overall = dashboard.json(f"{ROI}/summary?limit=1")["overall"]
    assert value == str(overall["executions"])
    assert shows(text, value), text


def test_savings_chart_draws(dashboard: Dashboard, page: Watched) -> None:
    """The savings chart is drawn: data-drawn="true", an SVG inside with its two traces
    (daily bars, cumulative line), days plotted."""
    open_dashboard(page.page, dashboard)
    chart = page.page.locator(CHART)
    chart.locator("svg g.trace.bars").first.wait_for()
    chart.locator("svg g.trace.scatter").first.wait_for()
    assert int(chart.get_attribute("data-points") or "0") > 0


def test_period_selector_changes_the_days_plotted(dashboard: Dashboard, page: Watched) -> None:
    """Each period button redraws the chart with its number of days and is the one pressed."""
    open_dashboard(page.page, dashboard)
    chart = page.page.locator(CHART)
    for period in ("7", "30", "90", "all", "7"):
        page.page.locator(f'button[data-period="{period}"]').click()
        wait_for_attribute(chart, "data-period", period)
        wait_for_attribute(chart, "data-drawn", "true")
        wait_for_attribute(chart, "data-points", str(PERIOD_DAYS[period]))
        chart.locator("svg g.trace").first.wait_for()
        for other in PERIOD_DAYS:
            pressed = page.page.locator(f'button[data-period="{other}"]').get_attribute(
                "aria-pressed"
            )
            assert pressed == ("true" if other == period else "false"), (period, other)


@pytest.mark.parametrize("column", ["roi_percentage", "cost_saved_usd", "executions"])
def test_sorting_orders_rows_by_exact_values(
    dashboard: Dashboard, page: Watched, column: str
) -> None:
    """A column's sort button orders the rows by its values as numbers (never as text), and a
    second press reverses them; aria-sort says which way."""
    open_dashboard(page.page, dashboard)
    header = page.page.locator(f'#patterns-table th[data-column="{column}"]')
    seen: set[str] = set()

    def new_order() -> str | None:
        order = header.get_attribute("aria-sort")
        return order if order in ("ascending", "descending") and order not in seen else None

    for _ in range(2):
        header.locator("button").click()
        order = wait_until(new_order, timeout=WAIT_SECONDS, what=f"aria-sort on {column}")
        seen.add(order)
        values = [
            Decimal(row["cells"][column]["value"]) for row in table_rows(page.page)
        ]  # every pattern of the data set has a value in these columns
        assert len(values) == len(dataset.PLANS)
        assert values == sorted(values, reverse=order == "descending"), (order, values)
    assert seen == {"ascending", "descending"}


def test_rating_filter_shows_only_that_rating(dashboard: Dashboard, page: Watched) -> None:
    """Choosing a rating hides every row of another rating; "" shows them all again."""
    open_dashboard(page.page, dashboard)
    everyone = sorted(dataset.EXPECTED_RATINGS)
    assert sorted(visible_ids(page.page)) == everyone
    for rating in ("failed", "excellent", "insufficient_data", ""):
        page.page.locator("select#rating-filter").select_option(rating)
        expected = sorted(
            pattern_id
            for pattern_id, rated in dataset.EXPECTED_RATINGS.items()
            if rating in ("", rated)
        )
        wait_until(
            lambda: sorted(visible_ids(page.page)) == expected,  # noqa: B023 (called at once)
            timeout=WAIT_SECONDS,
            what=f"the rows rated {rating or 'anything'} alone: {expected}, "
            f"not {visible_ids(page.page)}",
        )


def test_underperformers_are_the_apis_with_what_to_do(dashboard: Dashboard, page: Watched) -> None:
    """The underperformers listed are GET /underperformers', each with its recommendation."""
    open_dashboard(page.page, dashboard)
    api = dashboard.json(f"{ROI}/underperformers?limit=100")["patterns"]
    assert {p["pattern_id"] for p in api} == dataset.UNDERPERFORMERS
    entries = page.page.locator("#underperformers [data-pattern-id]")
    shown = {entries.nth(n).get_attribute("data-pattern-id"): n for n in range(entries.count())}
    assert set(shown) == dataset.UNDERPERFORMERS
    for pattern in api:
        text = entries.nth(shown[pattern["pattern_id"]]).inner_text()
        assert pattern["recommendation"] in text, (pattern["pattern_id"], text)


def test_keyboard_reaches_and_operates_period_and_sort_buttons(
    dashboard: Dashboard, page: Watched
) -> None:
    """Tab reaches a period button and a sort button, and Enter operates each."""
    open_dashboard(page.page, dashboard)
    chart = page.page.locator(CHART)
    tab_to(page.page, 'button[data-period="90"]')
    page.page.keyboard.press("Enter")
    wait_for_attribute(chart, "data-period", "90")
    wait_for_attribute(chart, "data-points", str(PERIOD_DAYS["90"]))
    header = page.page.locator('#patterns-table th[data-column="roi_percentage"]')
    before = header.get_attribute("aria-sort")
    tab_to(page.page, '#patterns-table th[data-column="roi_percentage"] button')
    page.page.keyboard.press("Enter")
    wait_until(
        lambda: header.get_attribute("aria-sort") not in (before, None, "none"),
        timeout=WAIT_SECONDS,
        what="Enter on the ROI sort button to sort the table",
    )


def test_phone_shows_the_page_without_horizontal_scrolling(
    dashboard: Dashboard, phone: Watched
) -> None:
    """On a 390 x 844 phone the page's body is no wider than the screen."""
    open_dashboard(phone.page, dashboard)
    widths = phone.page.evaluate(
        """() => ({document: document.documentElement.scrollWidth,
                   body: document.body.scrollWidth, screen: window.innerWidth})"""
    )
    assert widths["screen"] == PHONE["width"]
    assert widths["document"] <= widths["screen"], widths
    assert widths["body"] <= widths["screen"], widths
    screenshot(phone.page, "dashboard-phone.png", None, (CHART,))
    assert phone.problems() == []


def test_screenshot_of_the_dashboard(dashboard: Dashboard, page: Watched) -> None:
    """A screenshot of the whole dashboard, its chart drawn, is written under .local/ (and to
    docs/dashboard.png by `make screenshots`)."""
    open_dashboard(page.page, dashboard)
    path = screenshot(page.page, "dashboard.png", "dashboard.png", (CHART,))
    header = path.read_bytes()[:24]
    assert header.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(header[16:20], "big") == 1280  # the IHDR width


# Last in the module: it adds an event to the data set.
def test_live_refresh_shows_a_newly_stored_event(dashboard: Dashboard, page: Watched) -> None:
    """An event stored while the page is open raises its executions figure by one and moves
    its read time on, without reloading the page."""
    open_dashboard(page.page, dashboard)
    count = int(figure(page.page, "total-executions")[0])
    read_at = page.page.locator("#read-at").get_attribute("data-read-at") or ""
    page.page.evaluate("() => { window.__notReloaded = true; }")
    navigations = page.navigations
    dashboard.store(dataset.one_more_run(datetime.now(UTC)))
    wait_for_attribute(
        page.page.locator('[data-figure="total-executions"]'), "data-value", str(count + 1)
    )
    assert page.page.evaluate("() => window.__notReloaded === true"), "the page was reloaded"
    assert page.navigations == navigations
    new_read_at = page.page.locator("#read-at").get_attribute("data-read-at") or ""
    assert datetime.fromisoformat(new_read_at) >= datetime.fromisoformat(read_at)
    assert page.problems() == []
