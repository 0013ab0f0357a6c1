"""GET /api/roi-tracking/live: a server-sent event stream that tells the dashboard page when
the stored figures changed, so it re-reads them without a reload (docs/api.md, "The dashboard
page").

What a stream sends (text/event-stream, UTF-8):

1. `retry: 2000`: a browser's EventSource reconnects 2 s after the stream ends.
2. At once, then whenever the summaries' version differs from the last one sent, an event
   `summaries` whose data is `{"version": ..., "executions": N, "read_at": ISO time}`: the
   version is opaque (the pattern count, the executions and the latest update of
   pattern_roi_summary), `executions` every pattern's executions, all time.
3. Otherwise a comment line (`: waiting`) every ROI_DASHBOARD_REFRESH_SECONDS, so that proxies
   and the browser keep an idle stream open, and a closed one is noticed.

The version is read once per interval whatever the number of open streams (one TtlCache entry
they share), in a worker thread, briefly holding a pooled connection; a stream holds no thread
while it waits. At most MAX_STREAMS streams are open at once: the next gets 503, and the page
polls instead. While PostgreSQL is unavailable a stream sends an `unavailable` event and keeps
trying. When the server stops, `LiveFeed.stop` ends every stream at once (a stream never ends
by itself, so uvicorn would otherwise wait its whole graceful shutdown for it).
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Final

import anyio
import psycopg
from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ...errors import DatabaseUnavailableError
from ..backends import Database
from ..cache import TtlCache
from ..models import ErrorBody
from ..responses import error_response
from ..routes.common import ROI, Access, documented

log = logging.getLogger(__name__)

MAX_STREAMS: Final = 32  # open live streams at once; each holds one of ROI_API_MAX_CONNECTIONS
RECONNECT_MILLISECONDS: Final = 2000

_VERSION: Final = """
SELECT count(*), coalesce(sum(total_executions), 0), max(last_updated) FROM pattern_roi_summary
"""


class Stream:
    """One admitted stream: its feed wakes it to end it."""

    def __init__(self) -> None:
        self.waker = anyio.Event()


class LiveFeed:
    """What the open streams share: the summaries' version, read at most once per `seconds`,
    the bound on streams, and the signal that ends them all."""

    def __init__(self, db: Database, seconds: float) -> None:
        self._db = db
        self._seconds = seconds
        self._versions: TtlCache[str, tuple[str, int]] = TtlCache(seconds)
        # Weak: a stream whose response never started (its client left first) is forgotten
        # with its generator; one that started leaves in its `finally`.
        self._streams: weakref.WeakSet[Stream] = weakref.WeakSet()
        self._stopped = False

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def stop(self) -> None:
        """Ends every open stream (and refuses new ones); call on the event loop."""
        self._stopped = True
        for stream in list(self._streams):
            stream.waker.set()

    def admit(self) -> Stream | None:
        """A new stream, or None when MAX_STREAMS are open or the feed is stopped; call on
        the event loop."""
        if self._stopped or len(self._streams) >= MAX_STREAMS:
            return None
        stream = Stream()
        self._streams.add(stream)
        return stream

    async def events(self, stream: Stream) -> AsyncIterator[str]:
        """What an admitted `stream` sends (see the module's docstring), until the feed stops
        or the client goes."""
        try:
            yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
            sent: str | None = None
            while not self._stopped:
                try:
                    version, executions = await run_in_threadpool(self._current)
                except (DatabaseUnavailableError, psycopg.Error) as exc:
                    log.warning("live stream: the summaries cannot be read: %s", type(exc).__name__)
                    sent = None  # send the version again once it can be read
                    yield "event: unavailable\ndata: {}\n\n"
                else:
                    if version != sent:
                        sent = version
                        yield _event(version, executions)
                    else:
                        yield ": waiting\n\n"
                with anyio.move_on_after(self._seconds):
                    await stream.waker.wait()
        finally:
            self._streams.discard(stream)

    def _current(self) -> tuple[str, int]:
        return self._versions.get("summaries", self._read)

    def _read(self) -> tuple[str, int]:
        with self._db.connection() as conn:
            row = conn.execute(_VERSION).fetchone()
        patterns, executions, updated = row if row is not None else (0, 0, None)
        stamp = "" if updated is None else updated.astimezone(UTC).isoformat()
        return f"{patterns}:{executions}:{stamp}", int(executions)


def _event(version: str, executions: int) -> str:
    data = {
        "version": version,
        "executions": executions,
        "read_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    return f"event: summaries\ndata: {json.dumps(data)}\n\n"


def router(feed: LiveFeed, access: Access) -> APIRouter:
    """The live stream of `feed`, for those `access` admits. Left out of the OpenAPI document:
    it never ends, so no client generator or fuzzer can use it (docs/api.md)."""
    routes = APIRouter()

    @routes.get(
        f"{ROI}/live",
        include_in_schema=False,
        dependencies=access.dependencies,
        responses={503: documented(ErrorBody, f"{MAX_STREAMS} live streams are open already.")},
    )
    async def live() -> Response:
        stream = feed.admit()
        if stream is None:
            return error_response(
                503,
                f"{MAX_STREAMS} live streams are open already (or the server is stopping): "
                "poll the endpoints instead",
            )
        return StreamingResponse(
            feed.events(stream),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return routes
