"""Process plumbing for long-running commands: logging and a bounded, graceful shutdown."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Final

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE_SECONDS: Final = 9.0  # Kubernetes' default grace period is 30 s; we need <10


def configure_logging(level: str) -> None:
    """One line per record on stderr; kafka-python's chatter only at DEBUG."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if level != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.WARNING)


class ShutdownWatchdog:
    """SIGTERM/SIGINT ask `stop` to finish; if that takes longer than the deadline (a hung
    database call), the process exits anyway. Nothing is lost that way: an unfinished batch was
    never committed, so it is delivered again."""

    def __init__(self, stop: Callable[[], None], deadline: float = SHUTDOWN_DEADLINE_SECONDS):
        self._stop = stop
        self._deadline = deadline
        self._timer: threading.Timer | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self._timer is not None:
            return
        log.info("%s received; stopping", signal.Signals(signum).name)
        self._timer = threading.Timer(self._deadline, self._expired)
        self._timer.daemon = True
        self._timer.start()
        self._stop()

    def _expired(self) -> None:
        log.error(
            "shutdown took longer than %.0f s; exiting without finishing the batch "
            "(it was not committed and will be delivered again)",
            self._deadline,
        )
        logging.shutdown()
        os._exit(0)
