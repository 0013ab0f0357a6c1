"""One HTTP exchange straight with an ASGI application, headers included (no server, no
lifespan: the application's backends are never opened)."""

from __future__ import annotations

from typing import Any

import anyio


async def exchange(
    app: Any,
    method: str,
    path: str,
    first_body: anyio.Event | None = None,
    *,
    raise_errors: bool = True,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers by lower-case name, body) of one GET-like request to `app`. Sets
    `first_body` when the first part of the body arrives (a stream is open then). With
    `raise_errors` False, an exception the application re-raises after answering (Starlette's
    500) is swallowed."""
    done = anyio.Event()
    messages: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and first_body is not None:
            first_body.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    try:
        await app(scope, receive, send)
    except Exception:
        if raise_errors:
            raise
    finally:
        done.set()
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], headers, body
