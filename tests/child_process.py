"""A command run as a real child process, its output in a log file: what the harnesses of the
worker (tests/worker_harness.py) and the API (tests/api_harness.py) have in common."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


class LoggedProcess:
    """`argv` under `env` (the whole environment), stdout and stderr appended to `log_path`."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            list(argv), env=dict(env), stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_running(self) -> None:
        """Fails the test, with the end of the log, if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"{self.name} exited with {code}:\n{self.log()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Sends `sig` (if it still runs) and returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.process.kill()
        self.wait_exit(10)

    def close(self) -> None:
        """Kills the process if it still runs; always releases its log."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()
