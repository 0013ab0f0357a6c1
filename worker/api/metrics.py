"""The API process's own metrics (docs/metrics.md, "The API process"), on its GET /metrics.

A pure ASGI middleware (not Starlette's BaseHTTPMiddleware, which buffers and wraps streamed
responses) counts every request once its response starts, by the route's template, never the
raw path: /api/roi-tracking/report/{pattern_id}, or OTHER when no route matches, so the label
values are bounded by the routes of the code. The latency histogram times a request from its
arrival to the end of its response, around the 500 ms objective of RoiApiLatencyHigh.

Long-lived streams (responses of type text/event-stream, e.g. server-sent events) would sit in
the in-flight gauge and in the histogram's top bucket for as long as a browser keeps them open:
once such a response starts, the request leaves roi_api_requests_in_flight for
roi_api_streams_open, and its duration is never observed. The pool's figures are read from
psycopg_pool at scrape time (a collector, as the worker's database-backed metrics are).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .backends import Database, PoolUse

METRICS_PATH: Final = "/metrics"
OTHER: Final = "other"  # the route of a request no route matches, and any unusual method
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds, around the 500 ms objective (seed 002): its neighbours 0.25 and 1 bound the p95.
REQUEST_SECONDS_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
EVENT_STREAM: Final = b"text/event-stream"

disable_created_metrics()  # type: ignore[no-untyped-call]  # as worker.metrics: *_created doubles the output


class ApiMetrics:
    """The roi_api_* metrics a request changes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "roi_api_requests",
            "Requests answered, by route template (other: no route matched), method and "
            "status; counted when the response starts.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "roi_api_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template and "
            "method; event streams are left out (roi_api_streams_open).",
            ["route", "method"],
            buckets=REQUEST_SECONDS_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "roi_api_requests_in_flight",
            "Requests arrived and not yet answered in full (event streams only until their "
            "response starts).",
            registry=registry,
        )
        self.streams = Gauge(
            "roi_api_streams_open",
            "Event streams (text/event-stream responses) open now, by route template.",
            ["route"],
            registry=registry,
        )


class PoolCollector(Collector):
    """roi_api_db_pool_*, read from the pool when scraped."""

    def __init__(self, pool_use: Callable[[], PoolUse]) -> None:
        self._pool_use = pool_use

    def collect(self) -> Iterator[Metric]:
        use = self._pool_use()
        for name, help_, value in (
            (
                "roi_api_db_pool_connections",
                "PostgreSQL connections the pool holds open.",
                use.size,
            ),
            (
                "roi_api_db_pool_idle_connections",
                "Open connections no request is using.",
                use.available,
            ),
            (
                "roi_api_db_pool_waiting_requests",
                "Requests waiting for a connection (a request waits up to 5 s, then 503).",
                use.waiting,
            ),
            (
                "roi_api_db_pool_max_connections",
                "The most connections the pool opens (ROI_API_DB_POOL_SIZE).",
                use.max_size,
            ),
        ):
            yield GaugeMetricFamily(name, help_, value=value)


def install(app: FastAPI, database: Database) -> None:
    """Counts `app`'s requests and serves the metrics on METRICS_PATH, from a registry of its
    own (so that two applications in one process never share counts)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process_resident_memory_bytes, CPU, open fds
    registry.register(PoolCollector(database.pool_use))
    metrics = ApiMetrics(registry)
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.get(METRICS_PATH, include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def route_template(scope: Scope) -> str:
    """The template of the route that answered `scope` (its path without converters, e.g.
    /api/roi-tracking/report/{pattern_id}), as the router recorded it in scope["route"], or
    OTHER when no route matched."""
    path = getattr(scope.get("route"), "path_format", None)
    return path if isinstance(path, str) and path else OTHER


class RequestMetrics:
    """The ASGI middleware counting requests in `metrics` (module docstring)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        metrics = self._metrics
        method = scope["method"] if scope["method"] in METHODS else OTHER
        started = time.perf_counter()
        answered = stream = False
        metrics.in_flight.inc()

        async def counted(message: Message) -> None:
            nonlocal answered, stream
            if message["type"] == "http.response.start":
                answered = True
                route = route_template(scope)  # routed by now: the route is in the scope
                metrics.requests.labels(route, method, str(message["status"])).inc()
                if _is_event_stream(message.get("headers", [])):
                    stream = True
                    metrics.in_flight.dec()
                    metrics.streams.labels(route).inc()
            await send(message)

        try:
            await self._app(scope, receive, counted)
        except Exception:
            if not answered:  # the server error middleware outside answers 500
                metrics.requests.labels(route_template(scope), method, "500").inc()
            raise
        finally:
            if stream:
                metrics.streams.labels(route_template(scope)).dec()
            else:
                metrics.in_flight.dec()
                elapsed = time.perf_counter() - started
                metrics.duration.labels(route_template(scope), method).observe(elapsed)


def _is_event_stream(headers: Any) -> bool:
    return any(
        name.lower() == b"content-type" and value.split(b";")[0].strip().lower() == EVENT_STREAM
        for name, value in headers
    )
