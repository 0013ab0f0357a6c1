"""The API's own metrics (worker/api/metrics.py): requests counted by route template, method and
status, the latency histogram, in-flight requests and open event streams, the pool's use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.unit.api.asgi import exchange
from worker.api import metrics
from worker.api.app import create_app
from worker.api.backends import Database
from worker.settings import Settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def api() -> FastAPI:
    """The real application, its backends never opened."""
    settings = Settings.model_construct(database_url=SecretStr("postgresql://localhost/metrics"))
    return create_app(settings)


async def scrape(app: FastAPI) -> Samples:
    """(sample name, labels) -> value, from the application's own /metrics."""
    status, headers, body = await exchange(app, "GET", metrics.METRICS_PATH)
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_requests_are_counted_by_route_template_never_the_raw_path() -> None:
    """Two pattern ids make one series under the route's template (its :path converter left
    out); an unknown path is `other`, with its status."""

    async def run() -> Samples:
        app = api()
        for path in ("/api/roi-tracking/report/team/a", "/api/roi-tracking/report/b", "/no/such"):
            await exchange(app, "GET", path)
        return await scrape(app)

    samples = anyio.run(run)
    route = "/api/roi-tracking/report/{pattern_id}"
    # The database was never opened: 503, counted as such.
    assert value(samples, "roi_api_requests_total", route=route, method="GET", status="503") == 2
    assert value(samples, "roi_api_requests_total", route="other", method="GET", status="404") == 1
    routes = {dict(labels).get("route") for name, labels in samples if name.startswith("roi_api_")}
    assert not {r for r in routes if r and ("team" in r or "no/such" in r)}
    count = "roi_api_request_duration_seconds_count"
    assert value(samples, count, route=route, method="GET") == 2
    assert value(samples, "roi_api_requests_in_flight") == 1  # the scrape itself


def test_the_latency_buckets_surround_the_half_second_objective() -> None:
    """The histogram's buckets run from 10 ms to 5 s with 0.5 among them, as the alert needs."""
    buckets = metrics.REQUEST_SECONDS_BUCKETS
    assert (buckets[0], buckets[-1]) == (0.01, 5)
    assert 0.5 in buckets
    assert list(buckets) == sorted(buckets)


def test_an_unknown_method_and_a_method_not_allowed_are_bounded() -> None:
    """A made-up method is `other`; a route's wrong method answers 405 under a bounded route."""

    async def run() -> Samples:
        app = api()
        await exchange(app, "BREW", "/healthz")
        await exchange(app, "DELETE", "/healthz")
        return await scrape(app)

    samples = anyio.run(run)
    counted = [dict(labels) for name, labels in samples if name == "roi_api_requests_total"]
    assert {"route": "/healthz", "method": "other", "status": "405"} in counted
    assert {"route": "/healthz", "method": "DELETE", "status": "405"} in counted
    assert {labels["method"] for labels in counted} <= metrics.METHODS | {metrics.OTHER}


def test_an_error_is_counted_with_its_status_and_a_crash_as_500() -> None:
    """A route raising HTTPException counts its status; one raising anything else counts 500."""
    app = FastAPI()
    metrics.install(app, Database("postgresql://localhost/metrics", 2))

    @app.get("/teapot/{kind}")
    async def teapot(kind: str) -> None:
        raise HTTPException(status_code=418) if kind == "tea" else RuntimeError("boom")

    async def run() -> Samples:
        assert (await exchange(app, "GET", "/teapot/tea"))[0] == 418
        assert (await exchange(app, "GET", "/teapot/coffee", raise_errors=False))[0] == 500
        return await scrape(app)

    samples = anyio.run(run)
    route = "/teapot/{kind}"
    assert value(samples, "roi_api_requests_total", route=route, method="GET", status="418") == 1
    assert value(samples, "roi_api_requests_total", route=route, method="GET", status="500") == 1
    assert value(samples, "roi_api_requests_in_flight") == 1  # the scrape itself


def test_an_event_stream_leaves_in_flight_and_the_histogram_while_it_is_open() -> None:
    """While a text/event-stream response is open it counts in roi_api_streams_open, not in
    flight; its request is counted once it starts, and its duration is never observed."""
    app = FastAPI()
    metrics.install(app, Database("postgresql://localhost/metrics", 2))
    release = anyio.Event()

    @app.get("/live")
    async def live() -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: 1\n\n"
            await release.wait()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def run() -> tuple[Samples, Samples]:
        started = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(exchange, app, "GET", "/live", started)
            with anyio.fail_after(10):
                await started.wait()
            during = await scrape(app)
            release.set()
        return during, await scrape(app)

    during, after = anyio.run(run)
    assert value(during, "roi_api_streams_open", route="/live") == 1
    assert value(during, "roi_api_requests_in_flight") == 1  # the scrape itself
    assert value(during, "roi_api_requests_total", route="/live", method="GET", status="200") == 1
    assert value(after, "roi_api_streams_open", route="/live") == 0
    assert value(after, "roi_api_requests_in_flight") == 1
    assert value(after, "roi_api_request_duration_seconds_count", route="/live", method="GET") in (
        None,
        0,
    )


def test_the_pool_use_is_read_when_scraped() -> None:
    """The pool's connections, idle ones, waiting requests and maximum come from psycopg_pool."""

    async def run() -> Samples:
        return await scrape(api())

    samples = anyio.run(run)
    assert value(samples, "roi_api_db_pool_max_connections") == 4  # ROI_API_DB_POOL_SIZE
    assert value(samples, "roi_api_db_pool_waiting_requests") == 0
    for name in ("roi_api_db_pool_connections", "roi_api_db_pool_idle_connections"):
        assert value(samples, name) is not None


def test_each_application_counts_only_its_own_requests() -> None:
    """Two applications in one process keep separate registries."""

    async def run() -> tuple[Samples, Samples]:
        first, second = api(), api()
        await exchange(first, "GET", "/healthz")
        return await scrape(first), await scrape(second)

    first, second = anyio.run(run)
    labels: dict[str, Any] = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(first, "roi_api_requests_total", **labels) == 1
    assert value(second, "roi_api_requests_total", **labels) is None
