"""Opens when most recent messages are invalid, instead of flooding the dead-letter topic.

Such a stream is nearly always a producer bug or the wrong topic; dead-lettering it would
bury the few real errors and hide the problem. Invalid means rejected by decode or validate.

An open breaker does not stop the process (consume/pipeline.py): the worker keeps its partitions,
paused, and stays in the group, so that the same messages are not handed to the next replica,
which would open its breaker too, and so on through the whole group.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from ..errors import CircuitOpenError
from ..types import Partition

WINDOW: Final = 100  # messages
_UNKNOWN: Final = ("", -1)


class CircuitBreaker:
    """Opens when more than `max_ratio` of the last WINDOW messages were invalid (0: never)."""

    def __init__(self, max_ratio: float, window: int = WINDOW) -> None:
        self._max_ratio = max_ratio
        # False for a valid message; for an invalid one, the partition it came from.
        self._outcomes: deque[Partition | bool] = deque(maxlen=window)
        self._invalid = 0

    def record(self, invalid: bool, partition: Partition = _UNKNOWN) -> None:
        """Adds one message's outcome; raises CircuitOpenError when the breaker opens."""
        if self._max_ratio <= 0:
            return
        window = self._outcomes
        if not invalid and not self._invalid:  # the usual case, once per message: no sums
            window.append(False)
            return
        if len(window) == window.maxlen and window[0]:
            self._invalid -= 1
        window.append(partition if invalid else False)
        self._invalid += invalid
        if len(window) == window.maxlen and self._invalid > self._max_ratio * len(window):
            where = sorted({p for p in window if isinstance(p, tuple) and p != _UNKNOWN})
            raise CircuitOpenError(
                f"circuit breaker open: {self._invalid} of the last {len(window)} messages were "
                f"invalid (more than ROI_DLQ_MAX_RATIO={self._max_ratio:g})"
                + (f", from {', '.join(f'{t}/{p}' for t, p in where)}" if where else "")
                + "; nothing of this batch was stored or dead-lettered. Check the producers and "
                "the topic, then restart the worker (docs/operations.md, 'Circuit breaker'); "
                "ROI_DLQ_MAX_RATIO=0 dead-letters them all",
                partitions=tuple(where),
                ratio=self._invalid / len(window),
            )
