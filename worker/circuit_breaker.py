"""Stops the worker when most recent messages are invalid, instead of flooding the DLQ.

Such a stream is nearly always a producer bug or the wrong topic; dead-lettering it would
bury the few real errors and hide the problem. Invalid means rejected by decode or validate.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from worker.errors import CircuitOpenError

WINDOW: Final = 100  # messages


class CircuitBreaker:
    """Trips when more than `max_ratio` of the last WINDOW messages were invalid (0: never)."""

    def __init__(self, max_ratio: float, window: int = WINDOW) -> None:
        self._max_ratio = max_ratio
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._invalid = 0

    def record(self, invalid: bool) -> None:
        """Adds one message's outcome; raises CircuitOpenError when the breaker trips."""
        if self._max_ratio <= 0:
            return
        window = self._outcomes
        if not invalid and not self._invalid:  # the usual case, once per message: no sums
            window.append(False)
            return
        if len(window) == window.maxlen and window[0]:
            self._invalid -= 1
        window.append(invalid)
        self._invalid += invalid
        if len(window) == window.maxlen and self._invalid > self._max_ratio * len(window):
            raise CircuitOpenError(
                f"circuit breaker open: {self._invalid} of the last {len(window)} messages were "
                f"invalid (more than ROI_DLQ_MAX_RATIO={self._max_ratio:g}); nothing of this "
                "batch was stored or dead-lettered. Check the producers and the topic "
                "(docs/operations.md, 'Circuit breaker'); ROI_DLQ_MAX_RATIO=0 dead-letters them all"
            )
