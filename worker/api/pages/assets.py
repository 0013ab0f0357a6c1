"""The dashboard's static files, served by the API itself: no CDN, so the page works on a
network without internet.

Our own files come from worker/api/static/ (shipped inside the package, like the templates);
Plotly's script from the installed `plotly` package (plotly/package_data/plotly.min.js, the
plotly.js bundle of the pinned release), both read with importlib.resources once, at the first
request for them. Each answer carries a strong ETag (a 304 when the browser has it) and
`Cache-Control: public, max-age=MAX_AGE_SECONDS`; the page links every file with `?v=<its ETag>`,
so a new release is fetched at once although browsers cache the old one. A client that accepts
gzip gets the gzipped bytes (Plotly's script: 4.8 MB, 1.4 MB gzipped), compressed once.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Final

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .security_headers import PAGE_HEADERS

STATIC: Final = "/static"
MAX_AGE_SECONDS: Final = 3600
JS: Final = "text/javascript; charset=utf-8"
CSS: Final = "text/css; charset=utf-8"
# URL path under STATIC -> (how to read the bytes, media type). Nothing else is served.
PLOTLY: Final = "vendor/plotly.min.js"
PLOTLY_CSS: Final = "vendor/plotly.css"


def _own(name: str) -> Callable[[], bytes]:
    return (resources.files("worker.api") / "static" / name).read_bytes


def _plotly() -> bytes:
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()


# plotly.js inserts its styles into a <style> element it creates, which the page's policy
# (style-src 'self') refuses; it leaves them out when the page already has an element
# id="plotly.js-style-global" class="no-inline-styles". So the page links them as a file, made
# from the rules inside the very script served: the object {"X,X div": "...", ...} whose
# selectors plotly.js expands (X and Y below) before inserting each rule.
_PLOTLY_RULES: Final = re.compile(r'\{"X,X div":.*?\};for\(', re.DOTALL)
_RULE: Final = re.compile(r""""((?:[^"\\]|\\.)*)":(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def plotly_css() -> bytes:
    """plotly.js's own style rules, as a style sheet. Raises LookupError when the installed
    plotly.js holds them in another form (a test then fails: tests/unit/api)."""
    found = _PLOTLY_RULES.search(_plotly().decode())
    if found is None:
        raise LookupError("plotly.min.js: its style rules were not found")
    rules = []
    for selector, double, single in _RULE.findall(found.group(0)):
        expanded = re.sub(r"^,", " ,", selector)
        expanded = expanded.replace("X", ".js-plotly-plot .plotly").replace("Y", ".plotly-notifier")
        rules.append(f"{expanded} {{{double or single}}}")
    if not rules:
        raise LookupError("plotly.min.js: no style rule found")
    return ("\n".join(rules) + "\n").encode()


# plotly.js also inserts a bundled library's styles (MapLibre's, for map traces, which the page
# never draws) into a <style> element unless an element with its id is already on the page.
_STYLE_ONCE: Final = re.compile(
    r'document\.getElementById\("([0-9a-f]{64})"\)\)\{var \w+=document\.createElement\("style"\)'
)


def plotly_style_ids() -> list[str]:
    """The ids of the <style> elements plotly.js inserts unless present (see above)."""
    return _STYLE_ONCE.findall(_plotly().decode())


FILES: Final[dict[str, tuple[Callable[[], bytes], str]]] = {
    "dashboard.css": (_own("dashboard.css"), CSS),
    "dashboard.js": (_own("dashboard.js"), JS),
    PLOTLY: (_plotly, JS),
    PLOTLY_CSS: (plotly_css, CSS),
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file's bytes, gzipped bytes and ETag."""

    body: bytes
    gzipped: bytes
    media_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Asset:
        digest = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, gzip.compress(body, mtime=0), media_type, f'"{digest}"')


class Assets:
    """The files of FILES, each read and compressed once, on first use (thread-safe)."""

    def __init__(self) -> None:
        self._found: dict[str, Asset] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Asset:
        """Raises KeyError for a name not in FILES."""
        read, media_type = FILES[name]
        with self._lock:
            found = self._found.get(name)
            if found is None:
                found = self._found[name] = Asset.of(read(), media_type)
            return found

    def url(self, name: str) -> str:
        """The path the page links: versioned by the file's ETag."""
        return f"{STATIC}/{name}?v={self.get(name).etag.strip(chr(34))}"


def router(assets: Assets) -> APIRouter:
    """GET STATIC/<name> for the names of FILES; left out of the OpenAPI document."""
    routes = APIRouter(include_in_schema=False)

    @routes.get(STATIC + "/{name}")
    async def own(name: str, request: Request) -> Response:
        return await answer(name, request)

    @routes.get(STATIC + "/vendor/{name}")
    async def vendor(name: str, request: Request) -> Response:
        return await answer(f"vendor/{name}", request)

    async def answer(name: str, request: Request) -> Response:
        if name not in FILES:
            raise HTTPException(404, "no such file")
        asset = await run_in_threadpool(assets.get, name)  # the first read takes a while
        headers = {
            **PAGE_HEADERS,
            "ETag": asset.etag,
            "Cache-Control": f"public, max-age={MAX_AGE_SECONDS}",
            "Vary": "Accept-Encoding",
        }
        if asset.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    return routes
