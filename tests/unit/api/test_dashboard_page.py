"""The dashboard page's parts that need no database (worker/api/pages/): how figures are shown
(string manipulation only), the static files and their caching, the page with read tokens, and
the live stream's events, bound and stop."""

from __future__ import annotations

import contextlib
import gzip
import re
from collections.abc import AsyncGenerator, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from worker.api.app import create_app
from worker.api.pages import formatting
from worker.api.pages.assets import plotly_css, plotly_style_ids
from worker.api.pages.live import MAX_STREAMS, LiveFeed
from worker.api.pages.security_headers import CONTENT_SECURITY_POLICY
from worker.errors import DatabaseUnavailableError
from worker.settings import Settings

READ_TOKEN = "dashboard-read-token-0123456789"


def api(**settings: Any) -> FastAPI:
    return create_app(
        Settings.model_construct(database_url=SecretStr("postgresql://localhost/page"), **settings)
    )


def get(
    app: FastAPI, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers by lower-case name, body) of one GET straight to `app` (no lifespan)."""

    async def run() -> tuple[int, dict[str, str], bytes]:
        messages: list[MutableMapping[str, Any]] = []

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            messages.append(message)

        path_only, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path_only,
            "raw_path": path_only.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"test")]
            + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        await app(scope, receive, send)
        start = next(m for m in messages if m["type"] == "http.response.start")
        answered = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return start["status"], answered, body

    return anyio.run(run)


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("0", "$0"),
        ("425.50", "$425.50"),
        ("1234", "$1,234"),
        ("-1234567.123456", "-$1,234,567.123456"),
        ("100000", "$100,000"),
        (None, "—"),
    ],
)
def test_money_keeps_every_digit_and_groups_thousands(text: str | None, shown: str) -> None:
    """The API's string with a dollar sign and separators, nothing rounded."""
    assert formatting.money(text) == shown


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12
    )
)
def test_grouping_only_adds_commas(value: Any) -> None:
    """Taking the commas out of a grouped figure gives back the API's string."""
    text = format(value, "f")
    assert formatting.grouped(text).replace(",", "") == text


@pytest.mark.parametrize(
    ("fraction", "shown"),
    [
        ("0.986667", "98.7 %"),
        ("1.000000", "100.0 %"),
        ("0.050000", "5.0 %"),
        ("-0.031250", "-3.1 %"),
        ("0.000500", "0.1 %"),  # half up
        ("0", "0.0 %"),
        (None, "—"),
    ],
)
def test_a_rate_is_shown_as_a_percentage_rounded_half_up(fraction: str | None, shown: str) -> None:
    """A derived rate is shown as the text report shows it: a percentage to a tenth."""
    assert formatting.fraction_as_percent(fraction) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("27.983105", "28.0 %"),
        ("-38.461538", "-38.5 %"),
        ("1100.000000", "1,100.0 %"),
        (None, "—"),
    ],
)
def test_a_percentage_is_rounded_half_up_to_a_tenth(text: str | None, shown: str) -> None:
    assert formatting.percent(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [("418.609411", "$418.61"), ("6169.105", "$6,169.11"), ("-0.004", "$0.00"), (None, "—")],
)
def test_a_projection_is_shown_to_the_cent(text: str | None, shown: str) -> None:
    """Derived amounts are rounded half up to the cent for display; stored ones keep every
    digit (`money`)."""
    assert formatting.rounded_money(text) == shown


# --------------------------------------------------------------------------- static files


def test_the_script_and_styles_are_served_with_a_version_and_revalidated() -> None:
    """Each file answers with a strong ETag and the page's policy; the same ETag gets 304."""
    app = api()
    for name, media_type in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        status, headers, body = get(app, f"/static/{name}")
        assert status == 200
        assert headers["content-type"].startswith(media_type)
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "max-age=" in headers["cache-control"]
        again, _, empty = get(app, f"/static/{name}", {"If-None-Match": headers["etag"]})
        assert (again, empty) == (304, b"")
        assert body


def test_plotly_comes_from_the_installed_package_gzipped_when_accepted() -> None:
    """The charts' script is plotly.js from the plotly package, served by the API itself."""
    app = api()
    status, headers, body = get(
        app, "/static/vendor/plotly.min.js", {"Accept-Encoding": "gzip, br"}
    )
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body).startswith(b"/**\n* plotly.js v")


def test_only_the_known_files_are_served() -> None:
    """Anything but the page's own files and Plotly is a 404, paths included."""
    app = api()
    for path in ("/static/other.js", "/static/vendor/other.js", "/static/..%2Fapp.py"):
        assert get(app, path)[0] == 404


# --------------------------------------------------------------------------- read tokens


def test_with_read_tokens_the_page_carries_no_figure_and_asks_for_a_token() -> None:
    """The page is served (a browser cannot send a bearer token when it opens it), without
    reading the database, and links only the API's own files; its sections need the token."""
    app = api(api_read_tokens=SecretStr(READ_TOKEN), api_writes=False)
    status, headers, body = get(app, "/")
    page = body.decode()
    assert status == 200
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert 'data-token-required="true"' in page
    assert 'id="token-form"' in page
    assert 'data-figure="total-executions"' not in page
    assert not re.findall(r"(src|href)=\"(https?:)?//", page)
    assert "<script>" not in page  # no inline script: the policy would refuse it
    assert get(app, "/fragments/dashboard")[0] == 401
    assert get(app, "/fragments/patterns/p")[0] == 401
    assert get(app, "/api/roi-tracking/live")[0] == 401
    assert get(app, "/patterns/p")[0] == 200


# --------------------------------------------------------------------------- the live stream


class FakeDatabase:
    """Answers the live stream's one query with `row`, or raises `error`."""

    def __init__(self) -> None:
        self.row: tuple[int, int, datetime | None] = (0, 0, None)
        self.error: Exception | None = None
        self.reads = 0

    @contextlib.contextmanager
    def connection(self) -> Iterator[FakeDatabase]:
        if self.error is not None:
            raise self.error
        yield self

    def execute(self, query: str) -> FakeDatabase:
        del query
        self.reads += 1
        return self

    def fetchone(self) -> tuple[int, int, datetime | None]:
        return self.row


def test_the_stream_sends_an_event_when_the_summaries_change_and_comments_otherwise() -> None:
    """First the reconnect delay, then an event at once; then a comment while nothing changes,
    an event when the summaries do, `unavailable` while the database is down; stop ends it."""
    db = FakeDatabase()
    feed = LiveFeed(db, seconds=0.01)  # type: ignore[arg-type]

    async def run() -> list[str]:
        stream = feed.admit()
        assert stream is not None
        events = feed.events(stream)
        got = [await anext(events), await anext(events), await anext(events)]
        db.row = (1, 5, datetime(2026, 12, 6, tzinfo=UTC))
        got.append(await _next_not_comment(events))
        db.error = DatabaseUnavailableError("down")
        got.append(await anext(events))
        db.error = None
        got.append(await anext(events))  # the version again, once it can be read
        feed.stop()
        got.extend([event async for event in events])  # ends: at most one more message
        return got

    got = anyio.run(run)
    assert got[0] == "retry: 2000\n\n"
    assert got[1].startswith("event: summaries\ndata: ")
    assert '"executions": 0' in got[1]
    assert got[2] == ": waiting\n\n"
    assert '"executions": 5' in got[3]
    assert got[4] == "event: unavailable\ndata: {}\n\n"
    assert '"executions": 5' in got[5]
    assert len(got) <= 7
    assert feed.open_streams == 0


async def _next_not_comment(events: Any) -> str:
    while True:
        event = await anext(events)
        if not event.startswith(":"):
            return str(event)


def test_streams_are_bounded_and_none_is_admitted_after_stop() -> None:
    """MAX_STREAMS at once; the next is refused (the page polls); after stop, none."""
    feed = LiveFeed(FakeDatabase(), seconds=5)  # type: ignore[arg-type]

    async def run() -> tuple[int, bool, bool, bool]:
        admitted = [feed.admit() for _ in range(MAX_STREAMS)]
        refused = feed.admit() is None
        admitted.pop()
        again = feed.admit() is not None  # a stream that never started frees its place
        feed.stop()
        return len([s for s in admitted if s]), refused, again, feed.admit() is None

    count, refused, again, stopped = anyio.run(run)
    assert (count, refused, again, stopped) == (MAX_STREAMS - 1, True, True, True)


def test_one_read_serves_every_stream_within_the_interval() -> None:
    """However many streams are open, the summaries are read once per interval."""
    db = FakeDatabase()
    feed = LiveFeed(db, seconds=60)  # type: ignore[arg-type]

    async def run() -> None:
        for _ in range(5):
            stream = feed.admit()
            assert stream is not None
            events = feed.events(stream)
            assert isinstance(events, AsyncGenerator)
            await anext(events)
            await anext(events)
            await events.aclose()

    anyio.run(run)
    assert db.reads == 1


def test_plotly_styles_come_as_a_file_so_the_policy_holds() -> None:
    """plotly.js's style rules are found in the served script and become a style sheet, and
    the ids of the <style> elements it would insert are on the page; a plotly.js that keeps
    them in another form fails here, not in a browser."""
    css = plotly_css().decode()
    assert ".js-plotly-plot .plotly .main-svg {" in css
    assert "X" not in css.split("{", 1)[0]
    assert plotly_style_ids()
    status, headers, body = get(api(), "/static/vendor/plotly.css")
    assert (status, body.decode()) == (200, css)
    assert headers["content-type"].startswith("text/css")
