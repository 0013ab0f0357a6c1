"""The `roi-worker` entry point: stops cleanly on SIGTERM even before the command has started.

The parser loads little, but `run` then imports the pipeline (kafka-python, psycopg, pydantic),
which takes a moment. An orchestrator that stops `roi-worker run` in that moment must see exit
code 0 as at any other moment, not death by the signal: so the signal is taken before anything
is imported. Once the worker runs, its ShutdownWatchdog (worker/process.py) takes over.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def main() -> int:
    if sys.argv[1:2] == ["run"]:
        signal.signal(signal.SIGTERM, _stop_before_start)
    from .main import main as cli_main

    return cli_main()


def _stop_before_start(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise SystemExit(0)
