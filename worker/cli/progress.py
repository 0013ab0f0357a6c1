"""Progress of a long command on stderr: a bar redrawn in place on a terminal, plain lines
(one every few seconds) when stderr is a file or a pipe, so logs stay readable."""

from __future__ import annotations

import sys
import time
from typing import Final, TextIO

TERMINAL_REDRAW_SECONDS: Final = 0.2
LOG_LINE_SECONDS: Final = 5.0
WIDTH: Final = 30  # characters of the bar


class Progress:
    """Shows `done` out of `total` with the rate and the time left."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self._label = label
        self._total = total
        self._stream = stream or sys.stderr
        self._terminal = self._stream.isatty()
        self._started = time.monotonic()
        self._shown_at = 0.0
        self._done = 0
        self._shown_done = -1

    def update(self, done: int) -> None:
        self._done = done
        now = time.monotonic()
        interval = TERMINAL_REDRAW_SECONDS if self._terminal else LOG_LINE_SECONDS
        if now - self._shown_at >= interval:
            self._show(now)

    def finish(self) -> None:
        """The last state, and a newline after a terminal's bar; a file does not get the
        line it has just been given again."""
        if self._terminal or self._done != self._shown_done:
            self._show(time.monotonic())
        if self._terminal:
            self._stream.write("\n")
            self._stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        share = self._done / self._total if self._total else 1.0
        left = (self._total - self._done) / rate if rate > 0 else None
        eta = "--:--" if left is None else _clock(left)
        counts = f"{self._done:,}/{self._total:,}"
        text = f"{self._label} {share:6.1%}  {counts}  {rate:,.0f}/s  ETA {eta}"
        if not self._terminal:
            return text
        filled = int(WIDTH * min(share, 1.0))
        return f"{self._label} [{'#' * filled}{'-' * (WIDTH - filled)}]{text[len(self._label) :]}"

    def _show(self, now: float) -> None:
        self._shown_at = now
        self._shown_done = self._done
        if self._terminal:
            self._stream.write(f"\r{self.line(now)}\x1b[K")
        else:
            self._stream.write(self.line(now) + "\n")
        self._stream.flush()


def _clock(seconds: float) -> str:
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
