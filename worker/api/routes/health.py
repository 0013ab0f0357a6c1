"""The probes: /healthz (the process answers) and /readyz (PostgreSQL answers too)."""

from __future__ import annotations

from fastapi import APIRouter

from ..backends import Database
from ..models import ErrorBody, Health
from .common import documented


def router(db: Database) -> APIRouter:
    """The probes, reading `db`."""
    routes = APIRouter()

    @routes.get("/healthz", response_model=Health, tags=["health"], summary="The process answers")
    async def healthz() -> Health:  # on the event loop: it needs no thread, so none can starve it
        return Health(status="alive")

    @routes.get(
        "/readyz",
        response_model=Health,
        responses={503: documented(ErrorBody, "PostgreSQL is unavailable.")},
        tags=["health"],
        summary="PostgreSQL answers (Kafka is needed only by POST)",
    )
    def readyz() -> Health:
        with db.connection() as conn:
            conn.execute("SELECT 1")
        return Health(status="ready")

    return routes
