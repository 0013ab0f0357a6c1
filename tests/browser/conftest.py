"""Fixtures of the browser tests (tests/browser/, marker `browser`): Debian's Chromium driven
headless by Playwright for Python, and `roi-worker api` as a child process on the known data
set of tests/browser/dataset.py, one of each per test module; pages that record what a user
would not see: console errors, uncaught exceptions, and requests to any host but 127.0.0.1
(nothing the page loads may come from outside the machine); and screenshots.

Playwright runs the system's `chromium` (deploy/local/browser.sh installs it; `make test` runs
that first) and never downloads a browser. Without `chromium` the tests fail, saying so: a
missing browser never skips them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Frame,
    Page,
    sync_playwright,
)

from tests.api_harness import ApiProcess
from tests.browser import dataset
from tests.fixtures.services import Services
from worker.db.migrate import load_migrations, migrate

ROOT = Path(__file__).parents[2]
SCREENSHOTS = ROOT / ".local" / "screenshots"
DOCS = ROOT / "docs"
# `make screenshots` sets it: the screenshots then also replace the README's, in docs/.
UPDATE_DOC_SCREENSHOTS = os.environ.get("ROI_UPDATE_DOC_SCREENSHOTS") == "1"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 15_000  # the longest any one page action or wait may take
LOCAL_HOST = "127.0.0.1"
NOT_NETWORK = ("data", "blob", "about")  # URL schemes that load nothing from anywhere

NO_CHROMIUM = (
    "no `chromium` on PATH: the browser tests drive Debian's Chromium. Run "
    "deploy/local/browser.sh (as root; `make test` runs it), or install it with "
    "apt-get install -y --no-install-recommends chromium poppler-utils"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)


# Module scope, not session: while Playwright's sync API runs it marks its asyncio loop as
# running in this thread, so every later test that starts a loop of its own (anyio.run,
# asyncio.run) would fail with "Already running asyncio in this thread". A launch takes
# under a second.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, the system's, for one test module."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(NO_CHROMIUM, pytrace=False)
    # Chromium's sandbox refuses to start as root; as any other user it stays on.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        try:
            yield launched
        finally:
            launched.close()


@dataclass(frozen=True)
class Dashboard:
    """The API serving the data set, and the database it reads (which tests may add to)."""

    api: ApiProcess
    database_url: str
    now: datetime  # when the data set was built: every run is before it
    runs: list[dataset.Run]

    def url(self, path: str = "/") -> str:
        return f"{self.api.base_url}{path}"

    def json(self, path: str) -> Any:
        """The API's JSON answer to GET `path`, which must be 200."""
        status, body = self.api.get(path)
        assert status == 200, (path, status, body)
        return body

    def store(self, *documents: dict[str, Any]) -> None:
        """Stores more events, as the worker would, while the API runs."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            dataset.Store(conn).write(documents, datetime.now(UTC))


@pytest.fixture(scope="module")
def dashboard(
    services: Services, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    """A fresh database holding the data set, and `roi-worker api` on it (read only, its live
    stream looking for new figures every second)."""
    now = datetime.now(UTC).replace(microsecond=0)
    migrate(database_url, load_migrations())
    runs = dataset.runs(now)
    with psycopg.connect(database_url, autocommit=True) as conn:
        dataset.Store(conn).write((run.document() for run in runs), now)
    env = {
        "ROI_KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap_servers,
        "ROI_DATABASE_URL": database_url,
        "ROI_API_WRITES": "false",
        "ROI_DASHBOARD_REFRESH_SECONDS": "1",
    }
    api = ApiProcess(env, tmp_path_factory.mktemp("browser") / "api.log")
    try:
        api.wait_up("/readyz")
        yield Dashboard(api, database_url, now, runs)
    finally:
        api.close()


@dataclass
class Watched:
    """A page and what it did that a user would not see: console errors, uncaught exceptions,
    requests to anywhere but 127.0.0.1, and how often its main frame navigated."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    navigations: int = 0

    def problems(self) -> list[str]:
        return [
            *(f"console error: {text}" for text in self.console_errors),
            *(f"uncaught exception: {text}" for text in self.page_errors),
            *(f"request leaving {LOCAL_HOST}: {url}" for url in self.outside_requests),
        ]


def watch(page: Page) -> Watched:
    """Starts recording what `page` does (see Watched)."""
    watched = Watched(page)

    def on_request(url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in NOT_NETWORK and parts.hostname != LOCAL_HOST:
            watched.outside_requests.append(url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(f"{message.text} ({message.location.get('url')})")

    def on_navigation(frame: Frame) -> None:
        if frame == page.main_frame:
            watched.navigations += 1

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    page.on("request", lambda request: on_request(request.url))
    page.on("framenavigated", on_navigation)
    return watched


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    context = browser.new_context(**{"viewport": DESKTOP, **options})
    context.set_default_timeout(WAIT_MS)
    return context


@pytest.fixture
def page(browser: Browser) -> Iterator[Watched]:
    """A new desktop-sized page (1280 x 900) in a context of its own, watched."""
    context = new_context(browser)
    try:
        yield watch(context.new_page())
    finally:
        context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Watched]:
    """A new phone-sized page (390 x 844, touch), watched."""
    context = new_context(browser, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        yield watch(context.new_page())
    finally:
        context.close()


# Marks the charts' elements, and later says whether each is still the one marked, drawn.
_MARK_CHARTS = "cs => cs.forEach(s => { document.querySelector(s).screenshotMark = true; })"
_CHARTS_KEPT = """cs => cs.every(s => {
    const chart = document.querySelector(s);
    return chart?.screenshotMark === true && chart.dataset.drawn === "true";
})"""
SCREENSHOT_ATTEMPTS = 5


def screenshot(
    page: Page, local_name: str, doc_name: str | None, charts: tuple[str, ...] = ()
) -> Path:
    """The whole page as .local/screenshots/`local_name`, and as docs/`doc_name` (if named) as
    well when ROI_UPDATE_DOC_SCREENSHOTS=1 (`make screenshots`). Returns the .local/ one.

    `charts` (selectors) must be drawn in it: the page's live refresh may replace a chart's
    element with an undrawn one at any moment, so the picture is taken again when one of them
    was replaced while it was taken."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / local_name
    for _ in range(SCREENSHOT_ATTEMPTS):
        for chart in charts:
            page.locator(f'{chart}[data-drawn="true"] svg').first.wait_for()
        page.evaluate(_MARK_CHARTS, list(charts))
        page.screenshot(path=str(path), full_page=True)
        if page.evaluate(_CHARTS_KEPT, list(charts)):
            break
    else:
        raise AssertionError(f"the charts {charts} were redrawn during every screenshot")
    if doc_name is not None and UPDATE_DOC_SCREENSHOTS:
        shutil.copyfile(path, DOCS / doc_name)
    return path
