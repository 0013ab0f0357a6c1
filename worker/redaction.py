"""The one way a secret is kept out of any output: `redact(text)`.

Everything the process writes goes through it: every log record (RedactingFormatter, installed
by worker.process for every command), the CLI's stdout and stderr (`redacted_output`, around
the whole command in worker.cli.main's `main`, so tracebacks and third-party prints are covered
too), the worker's /readyz and /healthz bodies, and the API's error bodies.

Two nets, because a secret can be written in forms no single rule sees:
1. Shapes that carry a secret whatever its value: a URL's user-info (`scheme://user:***@`, up to
   the last `@` of the word, so an unescaped `@` in the password is covered), `password=` and
   any `*password*`, `*secret*` or credential-token key written as `key=value` (conninfo, query
   strings, keyword reprs) or as a quoted key (dict reprs and JSON, e.g. kafka-python's DEBUG
   dump of its configuration), and `Bearer` credentials.
2. The values themselves: every secret setting registers its value when the settings are read
   (`register_secret`), and each of its spellings (raw, percent-encoded, `+` for space, escaped
   as in a repr or JSON) is replaced wherever it appears, e.g. quoted by an exception message.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Final, TextIO
from urllib.parse import quote, quote_plus

MASK: Final = "***"
# Shorter values are not replaced as plain text (it would mask ordinary words); the shapes of
# net 1 still hide them where they are written as secrets.
MIN_SECRET_LENGTH: Final = 4

# Event fields such as `actual_tokens` count tokens of a model: only named credentials match.
_KEY: Final = (
    r"[A-Za-z0-9_.-]*(?:password|passwd|secret|credential|api_key|access_token|auth_token"
    r"|write_tokens?|read_tokens?)[A-Za-z0-9_.-]*"
)
_QUOTED: Final = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_SHAPES: Final = (
    # scheme://user:password@host: the password runs to the word's last "@".
    (re.compile(r"(?<=://)([^\s:/?#@'\"]*):[^\s'\"<>]*@"), rf"\1:{MASK}@"),
    # 'sasl_plain_password': 'x' and "password": "x" (dict reprs, JSON)
    (
        re.compile(rf"(['\"])({_KEY})\1(\s*:\s*)(?:{_QUOTED}|[^\s,}}\]]+)", re.IGNORECASE),
        rf"\1\2\1\3\1{MASK}\1",
    ),
    # password=x, sslpassword='x y', ROI_API_WRITE_TOKENS=x (conninfo, query strings, kwargs)
    (re.compile(rf"\b({_KEY})=(?:{_QUOTED}|[^\s)&;'\"]+)", re.IGNORECASE), rf"\1={MASK}"),
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1 {MASK}"),
)

_lock = threading.Lock()
_spellings: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Makes `redact` replace this value, in each of its spellings, wherever it appears."""
    global _spellings  # noqa: PLW0603  (one registry per process, like logging's)
    if value is None or len(value) < MIN_SECRET_LENGTH:
        return
    forms = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        json.dumps(value)[1:-1],
        repr(value)[1:-1],
    }
    with _lock:
        # Longest first, so that a spelling containing another is replaced whole.
        _spellings = tuple(sorted(set(_spellings) | forms, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` with every secret it shows replaced by ***."""
    for spelling in _spellings:
        if spelling in text:
            text = text.replace(spelling, MASK)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats a record (message, exception and stack) as usual, then redacts the lot."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingStream(io.TextIOBase):
    """A text stream that writes whole lines (ended by \\n or \\r) through `redact`, so that a
    secret split across two writes is still seen whole. Safe to share across threads."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target
        self._pending = ""
        self._lock = threading.Lock()

    @property
    def target(self) -> TextIO:
        return self._target

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._target.errors

    def fileno(self) -> int:
        return self._target.fileno()

    def isatty(self) -> bool:
        return self._target.isatty()

    def writable(self) -> bool:
        return True

    def reconfigure(self, **options: str) -> None:
        """As TextIOWrapper.reconfigure, for the stream written to (e.g. errors="replace")."""
        reconfigure = getattr(self._target, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(**options)

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            end = max(self._pending.rfind("\n"), self._pending.rfind("\r")) + 1
            if end:
                whole, self._pending = self._pending[:end], self._pending[end:]
                self._target.write(redact(whole))
                if self._target.line_buffering or "\r" in whole:
                    self._target.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._target.write(redact(self._pending))
                self._pending = ""
            self._target.flush()

    def close(self) -> None:
        self.flush()  # the target belongs to whoever made it


@contextmanager
def redacted_output() -> Iterator[None]:
    """Routes sys.stdout and sys.stderr through `redact` while the block runs (a command)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (
        stream if stream is None or isinstance(stream, RedactingStream) else RedactingStream(stream)
        for stream in saved
    )
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                with suppress(OSError, ValueError):  # a closed pipe: nothing left to protect
                    stream.flush()
        sys.stdout, sys.stderr = saved
