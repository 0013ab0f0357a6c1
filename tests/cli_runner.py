"""`roi-worker ARGS` run in-process, its exit code and output captured: the one runner of the
integration tests of the operator commands (the `roi_worker` fixture of
tests/fixtures/streams.py, and the fixtures that set a stream's settings first)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from worker.cli import main as cli


@dataclass(frozen=True)
class Outcome:
    """What one in-process `roi-worker` command returned and printed."""

    code: int
    out: str
    err: str


RoiWorker = Callable[..., Outcome]


def run_in_process(capsys: pytest.CaptureFixture[str], args: Sequence[str]) -> Outcome:
    """Runs `roi-worker ARGS` in this process with the environment as it is. A usage error
    that argparse reports (SystemExit) is an outcome like any other, with the exit code the
    interpreter would give it."""
    capsys.readouterr()
    # `replay` tunes the interpreter for its process (worker.process.tune_for_throughput); here
    # that process is the test session, so the tuning is undone after the command. Left on, the
    # rare collections let a client some earlier test leaked be collected inside a later test,
    # whose unclosed-socket warning then fails that test.
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        code = cli.main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def remove_roi_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Removes every ROI_* variable for the test, as from a shell that sets none."""
    for name in list(os.environ):
        if name.startswith("ROI_"):
            monkeypatch.delenv(name)


def in_process_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> RoiWorker:
    """`run(database_url, *args)`: the command with only ROI_DATABASE_URL set (every other
    ROI_* variable removed), as an operator's shell would run it."""
    remove_roi_settings(monkeypatch)

    def run(database_url: str, *args: str) -> Outcome:
        monkeypatch.setenv("ROI_DATABASE_URL", database_url)
        return run_in_process(capsys, args)

    return run
