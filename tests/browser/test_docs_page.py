"""/docs in headless Chromium against `roi-worker api`: Swagger UI, served by the API from an
installed package, renders the OpenAPI 3.1 document and calls the API, with no console error
(its Content-Security-Policy refuses nothing it needs) and no request leaving 127.0.0.1."""

from __future__ import annotations

from tests.browser.conftest import Dashboard, Watched, screenshot


def test_docs_renders_the_document_and_tries_an_operation_offline(
    dashboard: Dashboard, page: Watched
) -> None:
    """The title, version and operations show; "Try it out" on the summary gets a 200; every
    request stays on 127.0.0.1 and the console has no error (a CSP refusal would be one)."""
    response = page.page.goto(dashboard.url("/docs"))
    assert response is not None
    assert response.status == 200
    title = page.page.locator(".swagger-ui .info .title")
    title.wait_for()
    assert "roi-worker API" in title.inner_text()
    assert "OAS 3.1" in title.inner_text()
    summary = page.page.locator("#operations-roi-tracking-summary_api_roi_tracking_summary_get")
    summary.locator(".opblock-summary").click()
    summary.get_by_role("button", name="Try it out").click()
    summary.get_by_role("button", name="Execute").click()
    status = summary.locator(".live-responses-table tr.response .response-col_status")
    status.wait_for()
    assert status.inner_text().strip() == "200"
    screenshot(page.page, "docs.png", None)
    assert page.problems() == []
