"""/docs works without internet (worker/api/routes/docs.py): Swagger UI's files come from the
API, with their media types, and the page's policy allows its inline script by hash only."""

from __future__ import annotations

import base64
import hashlib
import re

import anyio
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from tests.unit.api.asgi import exchange
from worker.api.app import create_app
from worker.api.routes import docs
from worker.settings import Settings


def api() -> FastAPI:
    settings = Settings.model_construct(database_url=SecretStr("postgresql://localhost/docs"))
    return create_app(settings)


def get(path: str) -> tuple[int, dict[str, str], bytes]:
    async def run() -> tuple[int, dict[str, str], bytes]:
        return await exchange(api(), "GET", path)

    return anyio.run(run)


def test_the_page_loads_nothing_from_another_origin() -> None:
    """No http(s):// or protocol-relative URL in the page: every script, style and icon is a
    path of the API, and Swagger UI's online validator is off."""
    status, headers, body = get("/docs")
    page = body.decode()
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert not re.findall(r"https?://|//[a-z]", page)
    assert '"validatorUrl": null' in page
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sorted(referenced) == sorted(f"{docs.ASSETS}/{name}" for name in docs.ASSET_TYPES)


@pytest.mark.parametrize("name", sorted(docs.ASSET_TYPES))
def test_each_asset_the_page_names_is_served_with_its_media_type(name: str) -> None:
    """The script, the styles and the icon come from the installed fastapi-offline."""
    status, headers, body = get(f"{docs.ASSETS}/{name}")
    assert status == 200
    assert headers["content-type"] == docs.ASSET_TYPES[name]
    assert body == (docs.asset_directory() / name).read_bytes()


@pytest.mark.parametrize("name", ["redoc.standalone.js", "__init__.py", "..%2F__init__.py"])
def test_no_other_file_is_served(name: str) -> None:
    """Only the files the page needs: not the package's ReDoc script, or anything else."""
    assert get(f"{docs.ASSETS}/{name}")[0] == 404


def test_the_policy_allows_the_inline_script_by_its_hash_and_nothing_else() -> None:
    """script-src is 'self' and the SHA-256 of the page's one inline script; nothing from
    another origin, no 'unsafe-inline' or 'unsafe-eval' for scripts."""
    _, headers, body = get("/docs")
    header = headers["content-security-policy"]
    policy = {
        name: value
        for name, _, value in (part.strip().partition(" ") for part in header.split(";"))
    }
    (inline,) = re.findall(r"<script>(.*?)</script>", body.decode(), re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert policy["script-src"].split() == ["'self'", f"'sha256-{digest}'"]
    assert policy["default-src"] == "'none'"
    assert policy["style-src"] == "'self'"  # Swagger UI styles through the DOM only
    assert policy["connect-src"] == "'self'"  # the page reads /openapi.json
    assert "http" not in headers["content-security-policy"]


def test_redoc_is_off() -> None:
    """ReDoc would load its script from a CDN: /redoc is not served."""
    assert get("/redoc")[0] == 404


def test_the_openapi_document_leaves_out_the_docs_and_metrics_routes() -> None:
    """/docs, its files and /metrics are not API operations (schemas/roi-api.v1.json)."""
    paths = api().openapi()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/static", "/metrics"))]
