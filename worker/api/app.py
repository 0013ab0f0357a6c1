"""The application of `roi-worker api` (docs/api.md): the factory and its OpenAPI document.

create_app wires the routers (worker.api.routes) to the backends and the error handlers
(worker.api.errors): 404 unknown pattern, 408 slow body, 413 body too large, 415 not JSON, 422 a
bad parameter or event (every problem listed), 503 PostgreSQL or Kafka unavailable (logged).
Every response has a model in the OpenAPI schema, which is published as schemas/roi-api.v1.json.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from pydantic import SecretStr

from .. import __version__
from ..contract import event
from ..settings import Settings
from . import errors, metrics, openapi, security
from .backends import Database, Publisher
from .pages import assets, live, views
from .routes import (
    docs,
    executive,
    health,
    ingestion,
    patterns,
    savings,
    snapshots,
    tracking,
    usage,
)
from .routes.common import Access


def create_app(
    settings: Settings, *, database: Database | None = None, publisher: Publisher | None = None
) -> FastAPI:
    """The application; opens the pool at start-up and closes both backends at shutdown."""
    db = database or Database(settings.database_url.get_secret_value(), settings.api_db_pool_size)
    kafka = publisher or Publisher(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        del app
        db.open()
        try:
            yield
        finally:
            await run_in_threadpool(kafka.close)
            await run_in_threadpool(db.close)

    app = FastAPI(
        title="roi-worker API",
        version=__version__,
        description="ROI of automation patterns, read from the summaries roi-worker keeps, and "
        "HTTP ingestion of execution events. Decimals are JSON strings. See docs/api.md.",
        lifespan=lifespan,
        # /docs is routes/docs.py's, served without a CDN; ReDoc would load from one.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    metrics.install(app, db)  # GET /metrics, and every request counted
    readers = Access(security.readers(settings), security.reads_protected(settings))
    # In this order: the paths of the OpenAPI document (schemas/roi-api.v1.json) follow it.
    app.include_router(patterns.router(settings, db, readers))
    app.include_router(snapshots.router(settings, db, readers))
    app.include_router(savings.router(db, readers))
    app.include_router(tracking.router(settings, db, readers))
    app.include_router(executive.router(settings, db, readers))
    app.include_router(usage.router(db, readers))
    if settings.api_writes:
        app.include_router(ingestion.router(kafka, settings))
    app.include_router(health.router(db))
    # The dashboard page (worker.api.pages), its files and its live stream: not in the document.
    feed = live.LiveFeed(db, settings.dashboard_refresh_seconds)
    app.state.live_feed = feed  # worker.api.server stops its streams first when it stops
    files = assets.Assets()
    app.include_router(views.router(settings, db, readers, files))
    app.include_router(assets.router(files))
    app.include_router(live.router(feed, readers))
    app.include_router(docs.router(app.title, app.openapi_url or "/openapi.json"))
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document /openapi.json serves, built without any service."""
    settings = Settings.model_construct(database_url=SecretStr("postgresql://localhost/openapi"))
    return create_app(settings).openapi()


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the event contract the POST body refers to and the rules
    FastAPI cannot write (worker.api.openapi); cached."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        # The contract's own schema, as schemas/execution-event.v1.json publishes it.
        contract = event.json_schema()
        document.setdefault("components", {}).setdefault("schemas", {})["ExecutionEvent"] = contract
        openapi.state_rules(document)
        app.openapi_schema = document
    return app.openapi_schema
