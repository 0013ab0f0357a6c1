"""Who may call the API, and what a request must look like before its body is read.

- Writes (POST) need a bearer token from ROI_API_WRITE_TOKENS, unless ROI_API_ANONYMOUS_WRITES
  says anyone may write (the demo, tests). `roi-worker api` refuses to start with writes
  enabled, no write token and no such opt-in (`check_write_access`).
- Reads are open unless ROI_API_READ_TOKENS is set; then a read or a write token is needed.
  /healthz, /readyz and the OpenAPI document stay open (probes, clients' code generators).
- Tokens are compared in constant time over their SHA-256 digests, so neither a token's
  content nor its length shows in the time an answer takes.
- A POST body must be `application/json`: a web page can send a form or text/plain to any
  address without asking (a "simple" cross-site request), but never JSON with an
  Authorization header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from ..errors import ConfigurationError
from ..settings import Settings

JSON: Final = "application/json"

_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="A token from ROI_API_WRITE_TOKENS (writes and reads) or ROI_API_READ_TOKENS "
    "(reads), sent as `Authorization: Bearer <token>` (docs/api.md).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


class AccessTokens:
    """A set of bearer tokens, checked in constant time."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests = tuple(_digest(token) for token in tokens)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def accept(self, token: str) -> bool:
        presented = _digest(token)
        accepted = False
        for digest in self._digests:  # every one, whichever matches
            accepted |= hmac.compare_digest(digest, presented)
        return accepted


def check_write_access(settings: Settings) -> None:
    """Raises ConfigurationError when anyone could publish events by mistake."""
    if settings.api_writes and not settings.write_tokens() and not settings.api_anonymous_writes:
        raise ConfigurationError(
            "ROI_API_WRITE_TOKENS is not set, so nobody could publish events through the API: "
            "set it (comma-separated bearer tokens, e.g. `openssl rand -hex 32`), or "
            "ROI_API_WRITES=false for a read-only API, or ROI_API_ANONYMOUS_WRITES=true to let "
            "anyone who can reach the API publish"
        )


def readers(settings: Settings) -> list[Any]:
    """The dependencies of a read endpoint: a token check only when read tokens are set."""
    if not settings.read_tokens():
        return []
    allowed = AccessTokens((*settings.read_tokens(), *settings.write_tokens()))
    return [Depends(_require(allowed))]


def writers(settings: Settings) -> list[Any]:
    """The dependencies of a write endpoint: a token (unless writes are anonymous on purpose),
    then a JSON body."""
    if settings.api_anonymous_writes and not settings.write_tokens():
        return [Depends(_require_json)]
    return [Depends(_require(AccessTokens(settings.write_tokens()))), Depends(_require_json)]


def reads_protected(settings: Settings) -> bool:
    return bool(settings.read_tokens())


def _require(allowed: AccessTokens) -> Callable[[Credentials], None]:
    def check(credentials: Credentials) -> None:
        if credentials is None:
            raise _unauthorized("a bearer token is required: send Authorization: Bearer <token>")
        # An empty set (writes with no token configured) accepts nothing: fail closed.
        if not allowed.accept(credentials.credentials):
            raise _unauthorized("the bearer token is not accepted", error="invalid_token")

    return check


def _require_json(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != JSON:
        raise HTTPException(
            415, f"the body must be {JSON} (Content-Type: {JSON}), not {media_type or 'unset'}"
        )


def _unauthorized(message: str, error: str | None = None) -> HTTPException:
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return HTTPException(401, message, headers={"WWW-Authenticate": challenge})


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
