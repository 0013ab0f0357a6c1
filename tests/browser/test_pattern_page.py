"""A pattern's page, `/patterns/{pattern_id}`, in headless Chromium against `roi-worker api` on
the known data set (tests/browser/dataset.py): reached from the dashboard's table, it loads
cleanly and from 127.0.0.1 only, draws its charts and shows the report's figures."""

from __future__ import annotations

from typing import Final

from playwright.sync_api import Page

from tests.browser.conftest import Dashboard, Watched, screenshot
from tests.browser.reading import shows

ROI: Final = "/api/roi-tracking"
PATTERN: Final = "deploy-preview"  # 120 days old: every snapshot is complete
CHARTS: Final = ("#pattern-history-chart", "#outcomes-chart")
TRACE: Final = ":is(g.trace, g.slice)"  # what Plotly draws a trace (or a pie's slice) in
SECTIONS: Final = ("#execution-time", "#quality", "#snapshots", "#recent-executions")


def open_pattern(page: Page, dashboard: Dashboard, pattern_id: str = PATTERN) -> None:
    """Opens the pattern's page and waits for its charts to be drawn (marked so, an SVG
    inside: the live refresh may swap a chart's element for a new one)."""
    response = page.goto(dashboard.url(f"/patterns/{pattern_id}"))
    assert response is not None
    assert response.status == 200, f"answered {response.status}: {response.text()[:500]}"
    for chart in CHARTS:
        page.locator(f'{chart}[data-drawn="true"] svg').first.wait_for()


def test_pattern_page_loads_without_errors_or_outside_requests(
    dashboard: Dashboard, page: Watched
) -> None:
    """A pattern's page loads with no console error, no uncaught exception and every request
    to 127.0.0.1, and names its pattern."""
    open_pattern(page.page, dashboard)
    assert PATTERN in page.page.locator("h1").inner_text()
    assert page.problems() == []


def test_every_chart_of_the_pattern_page_draws(dashboard: Dashboard, page: Watched) -> None:
    """The history and outcomes charts are drawn: data-drawn="true", an SVG inside each with
    a plotted trace."""
    open_pattern(page.page, dashboard)
    for chart in CHARTS:
        page.page.locator(f'{chart}[data-drawn="true"] svg {TRACE}').first.wait_for()


def test_pattern_page_shows_the_reports_figures(dashboard: Dashboard, page: Watched) -> None:
    """Execution-time percentiles and quality show GET /report/{id}'s figures; the snapshots
    table has the baseline and the three snapshots; recent executions are listed."""
    open_pattern(page.page, dashboard)
    report = dashboard.json(f"{ROI}/report/{PATTERN}")["pattern"]
    for section in SECTIONS:
        assert page.page.locator(section).is_visible(), section
    times = page.page.locator("#execution-time").inner_text()
    for name, value in report["execution_time_percentiles"].items():
        assert shows(times, value), (name, value, times)
    quality = page.page.locator("#quality").inner_text()
    assert shows(quality, report["quality_score_mean"], scales=(1, 100)), quality
    snapshots = dashboard.json(f"{ROI}/snapshots/{PATTERN}")["pattern"]
    assert len(snapshots["snapshots"]) == 3
    assert page.page.locator("#snapshots tbody tr").count() >= 1 + len(snapshots["snapshots"])
    assert page.page.locator("#recent-executions tbody tr").count() > 0


def test_dashboard_row_links_to_the_pattern_page(dashboard: Dashboard, page: Watched) -> None:
    """Following a pattern's link in the dashboard's table opens its page, a slash in its id
    included."""
    for pattern_id in (PATTERN, "team/new-idea"):
        page.page.goto(dashboard.url("/"))
        row = page.page.locator(f'#patterns-table tr[data-pattern-id="{pattern_id}"]')
        row.locator("a").first.click()
        page.page.wait_for_url(dashboard.url(f"/patterns/{pattern_id}"))
        assert pattern_id in page.page.locator("h1").inner_text()
    assert page.problems() == []


def test_unknown_pattern_page_is_not_found(dashboard: Dashboard, page: Watched) -> None:
    """A pattern never stored gets a 404 page, not an error."""
    response = page.page.goto(dashboard.url("/patterns/never-stored"))
    assert response is not None
    assert response.status == 404


def test_screenshot_of_the_pattern_page(dashboard: Dashboard, page: Watched) -> None:
    """A screenshot of the whole pattern page, charts drawn, is written under .local/ (and to
    docs/pattern-page.png by `make screenshots`)."""
    open_pattern(page.page, dashboard)
    path = screenshot(page.page, "pattern.png", "pattern-page.png", CHARTS)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
