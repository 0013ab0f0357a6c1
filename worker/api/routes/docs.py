"""/docs: Swagger UI with its script, styles and icon served by the API itself.

FastAPI's own /docs loads Swagger UI from a CDN (and /redoc loads ReDoc from one), so on a
network without internet the page stays blank. Here the three files come from the installed
fastapi-offline package (its static files only: Swagger UI 5, which renders OpenAPI 3.1; the
swagger-ui-bundle package ships 4.15, which refuses a 3.1 document), under ASSETS, and /redoc is
off. Swagger UI's online validator badge is off too: it would ask validator.swagger.io about the
document.

The page's one inline script (FastAPI's, which starts Swagger UI) is allowed by its SHA-256 in
the page's own Content-Security-Policy, so that nothing but that script and the API's own
files may run on /docs; other pages are not affected.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

DOCS_PATH: Final = "/docs"
ASSETS: Final = "/static/swagger-ui"
# File name -> media type: the only files of the package served (not its ReDoc script).
ASSET_TYPES: Final = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
# Swagger UI sets styles through the DOM (CSSOM), which style-src does not restrict, and its CSS
# draws icons as data: images. tests/unit/api/test_docs_page.py checks the policy.
_POLICY: Final = (
    "default-src 'none'; script-src 'self' {scripts}; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# As on the dashboard's pages (worker/api/pages/security_headers.py).
HARDENING: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_INLINE_SCRIPT: Final = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def asset_directory() -> Traversable:
    """The installed Swagger UI files (fastapi_offline/static/)."""
    return resources.files("fastapi_offline") / "static"


def router(title: str, openapi_url: str) -> APIRouter:
    """GET /docs and GET ASSETS/<file>, left out of the OpenAPI document."""
    routes = APIRouter(include_in_schema=False)
    page = docs_page(title, openapi_url)

    @routes.get(DOCS_PATH)
    async def docs() -> HTMLResponse:
        return page

    @routes.get(ASSETS + "/{name}")
    async def asset(name: str) -> Response:
        media_type = ASSET_TYPES.get(name)
        if media_type is None:
            raise HTTPException(status_code=404, detail="Not Found")
        body = await run_in_threadpool(_read, name)
        headers = {**HARDENING, "Cache-Control": "public, max-age=3600"}
        return Response(body, media_type=media_type, headers=headers)

    return routes


@functools.cache
def _read(name: str) -> bytes:
    """An asset's bytes, read once (the script is about 1.5 MB)."""
    return (asset_directory() / name).read_bytes()


def docs_page(title: str, openapi_url: str) -> HTMLResponse:
    """Swagger UI's page for the document at `openapi_url`, with its Content-Security-Policy."""
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - Swagger UI",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},
    )
    body = bytes(html.body).decode()
    policy = content_security_policy(body)
    return HTMLResponse(body, headers={"Content-Security-Policy": policy, **HARDENING})


def content_security_policy(html: str) -> str:
    """The policy for `html`: the API's own files, and its inline scripts by their hash."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    ]
    return _POLICY.format(scripts=" ".join(hashes))
