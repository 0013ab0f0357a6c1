"""`roi-worker ARGS` run in-process, its exit code and output captured: for the integration
tests of the operator commands (the `roi_worker` fixture of tests/integration/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
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


def in_process_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> RoiWorker:
    """`run(database_url, *args)`: the command with only ROI_DATABASE_URL set (every other
    ROI_* variable removed), as an operator's shell would run it."""
    for name in list(os.environ):
        if name.startswith("ROI_"):
            monkeypatch.delenv(name)

    def run(database_url: str, *args: str) -> Outcome:
        monkeypatch.setenv("ROI_DATABASE_URL", database_url)
        capsys.readouterr()
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run
