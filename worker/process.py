"""Process plumbing for long-running commands: logging and a bounded, graceful shutdown."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Final

from pythonjsonlogger.json import JsonFormatter

from .redaction import RedactingFormatter, redact

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE_SECONDS: Final = 9.0  # we promise an exit within 10 s of SIGTERM
KAFKA_LOG_INTERVAL_SECONDS: Final = 30.0
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Allocations of container objects between two young-generation collections (CPython: 700).
GC_YOUNG_THRESHOLD: Final = 50_000
# How long a thread runs before another that waits for the GIL gets it (CPython: 0.005 s).
SWITCH_INTERVAL_SECONDS: Final = 0.0002


def tune_for_throughput() -> None:
    """Tunes the interpreter for the commands that consume streams (`run`, `replay`).

    The garbage collector runs rarely. Each event allocates a dozen container objects, and a
    batch's objects live until it is stored: at the default threshold the collector ran every
    ~60 events and scanned the batch being built over and over, a quarter of the time spent
    decoding and validating (docs/benchmarks.md). The loop makes no reference cycles
    (reference counting frees its objects), so running the collector rarely holds no memory
    back.

    Threads switch every SWITCH_INTERVAL_SECONDS instead of every 5 ms. The store thread
    gives up the GIL at each round trip to PostgreSQL (a COPY sends many) and, when it wants it
    back while the loop is decoding, waits out the loop's interval: at 5 ms those waits made
    the write of a batch, which the loop waits for, last far longer than its work. At 0.2 ms a
    worker catching up stored 26 % more events per second for the same CPU per event.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def configure_command_logging(level: str, log_format: str = "text") -> None:
    """For the operator commands, which end a failure in one line saying what failed:
    kafka-python's reconnect messages would come first, so they show at DEBUG only."""
    configure_logging(level, log_format)
    if level != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


def configure_logging(level: str, log_format: str = "text") -> None:
    """One line per record on stderr, as text or as a JSON object (ROI_LOG_FORMAT), redacted
    (worker/redaction.py); kafka-python's chatter only at DEBUG."""
    output = logging.StreamHandler(sys.stderr)
    output.setFormatter(JsonLines() if log_format == "json" else RedactingFormatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[output])
    for noisy in ("kafka", "kafka.net.selector"):  # as set below, or as they come at DEBUG
        logging.getLogger(noisy).setLevel(logging.NOTSET)
    if level != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.WARNING)
        # "Task ... is blocking the event loop": kafka-python's IO thread measured its own step
        # while this process's other threads held the GIL (a batch being validated), not a
        # fault of the client. Shown at DEBUG only.
        logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
        limit = RateLimit("kafka", KAFKA_LOG_INTERVAL_SECONDS)
        for handler in logging.getLogger().handlers:
            handler.addFilter(limit)  # a logger's own filters would miss its children


class JsonLines(JsonFormatter):
    """ROI_LOG_FORMAT=json: one JSON object per record, with stable keys: `time` (ISO 8601,
    UTC), `level`, `logger`, `message`, and `exc_info` / `stack_info` when there is one. The
    message and the traceback are redacted before they are encoded (worker/redaction.py)."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def format(self, record: logging.LogRecord) -> str:
        clean = logging.makeLogRecord(record.__dict__)
        clean.msg, clean.args = redact(record.getMessage()), None
        if record.exc_info:
            clean.exc_info, clean.exc_text = (
                None,
                redact(str(self.formatException(record.exc_info))),
            )
        if record.stack_info:
            clean.stack_info = redact(str(self.formatStack(record.stack_info)))
        return redact(super().format(clean))


class RateLimit(logging.Filter):
    """For loggers under `prefix`: at most one record per logger and level per interval; the
    next one says how many were held back. kafka-python logs every failed reconnect (dozens a
    second while a broker restarts), which would bury the worker's own lines."""

    def __init__(self, prefix: str, interval: float) -> None:
        super().__init__()
        self._prefix = prefix
        self._interval = interval
        self._last: dict[tuple[str, int], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefix):
            return True
        key = (record.name, record.levelno)
        now = time.monotonic()
        with self._lock:
            last, held = self._last.get(key, (-self._interval, 0))
            if now - last < self._interval:
                self._last[key] = (last, held + 1)
                return False
            self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} similar messages held back)"
        return True


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
