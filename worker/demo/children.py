"""The demo's child processes: `roi-worker run` and `roi-worker api`, each with its output in a
log file, and what the demo asks of them over HTTP (readiness, the worker's counts, the API's
summary).

Each child runs in a session of its own, so that only the demo signals it, once, whatever
Ctrl-C reaches; the demo stops it with SIGTERM (SIGKILL after STOP_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

from prometheus_client.parser import text_string_to_metric_families

from ..contract import json_codec
from ..errors import RoiWorkerError

READY_TIMEOUT_SECONDS: Final = 60.0
POLL_SECONDS: Final = 0.2
STOP_TIMEOUT_SECONDS: Final = 10.0

# The package this code was imported as (roi_worker or worker): the children run the same copy.
PACKAGE: Final = __name__.partition(".")[0]


class DemoError(RoiWorkerError):
    """The demo cannot go on; the message says why and where the worker's log is."""


class Child:
    """`roi-worker run` (or another `command`) as a child process with its output in a log
    file; `name` says which in messages."""

    def __init__(
        self,
        log_path: Path,
        command: Sequence[str] = ("run",),
        name: str = "the worker",
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self.name = name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("wb")
        environment = {
            **os.environ,
            "ROI_CREATE_TOPICS": "true",
            "ROI_METRICS_HOST": "127.0.0.1",
            "ROI_API_HOST": "127.0.0.1",
            **(env or {}),
        }
        # A session of its own: only the demo signals it, once, whatever Ctrl-C reaches.
        self._process = subprocess.Popen(  # noqa: S603  (our own CLI, fixed commands)
            [sys.executable, "-m", PACKAGE, *command],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )

    def pause(self, seconds: float) -> None:
        """Waits up to `seconds`; raises DemoError as soon as the worker has exited."""
        try:
            code = self._process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return
        raise DemoError(f"{self.name} exited with code {code}: {self.last_line()}")

    def run_until_exit(self, seconds: float | None) -> int | None:
        """Waits for `seconds` (None: forever); the worker's exit code if it ended meanwhile."""
        try:
            return self._process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int:
        """SIGTERM, up to STOP_TIMEOUT_SECONDS to finish, then SIGKILL. Returns the exit code."""
        try:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    return self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
                except (subprocess.TimeoutExpired, KeyboardInterrupt):
                    self._process.kill()
            return self._process.wait()
        finally:
            self._log.close()

    def last_line(self) -> str:
        """The worker's last log line (its one-line error, when it failed) and where the log is."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        last = next((line.strip() for line in reversed(lines) if line.strip()), "(no output)")
        return f"{last} (log: {self.log_path})"


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(worker: Child, base_url: str) -> None:
    """Until `worker` answers 200 at /readyz; DemoError after READY_TIMEOUT_SECONDS or as soon
    as it exits."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    reason = "not answering yet"
    while True:
        try:
            with urlopen(f"{base_url}/readyz", timeout=2) as response:  # noqa: S310  (http://127.0.0.1)
                if response.status == 200:
                    return
        except HTTPError as exc:
            with exc:
                reason = exc.read().decode("utf-8", "replace").strip() or f"HTTP {exc.code}"
        except (URLError, OSError):
            reason = "not answering yet"
        if time.monotonic() > deadline:
            raise DemoError(
                f"{worker.name} was not ready within {READY_TIMEOUT_SECONDS:.0f} s "
                f"(/readyz: {reason}); see {worker.log_path}"
            )
        worker.pause(POLL_SECONDS)


def worker_counts(base_url: str) -> dict[str, int]:
    """roi_worker_messages_total by outcome, from the worker's /metrics ({} if unreadable)."""
    try:
        with urlopen(f"{base_url}/metrics", timeout=5) as response:  # noqa: S310  (http://127.0.0.1)
            text = response.read().decode("utf-8")
    except (URLError, OSError):
        return {}
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "roi_worker_messages_total":
                counts[sample.labels.get("outcome", "")] = int(sample.value)
    return counts


def api_patterns(api_url: str) -> str:
    """How many patterns the API's summary lists, or why it could not be read."""
    try:
        with urlopen(f"{api_url}/api/roi-tracking/summary", timeout=10) as response:  # noqa: S310  (http://127.0.0.1)
            return f"{json_codec.loads(response.read().decode('utf-8'))['total']:,}"
    except (URLError, OSError, ValueError, KeyError) as exc:
        return f"unreadable: {exc}"
