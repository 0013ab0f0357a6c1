"""The `roi-worker` entry point: stops cleanly on SIGTERM even before the command has started.

Loading the command line takes about half a second (kafka-python, psycopg, pydantic). An
orchestrator that stops `roi-worker run` in that moment must see exit code 0 as at any other
moment, not death by the signal: so the signal is taken before anything heavy is imported.
Once the worker runs, its ShutdownWatchdog (worker/process.py) takes over.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def main() -> int:
    if sys.argv[1:2] == ["run"]:
        signal.signal(signal.SIGTERM, _stop_before_start)
    from worker.cli.main import main as cli_main  # noqa: PLC0415  (after the handler, on purpose)

    return cli_main()


def _stop_before_start(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise SystemExit(0)
