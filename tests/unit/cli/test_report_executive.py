"""`roi-worker report --executive`: arguments that do not go with it are refused in one line,
exit 2, before any database is contacted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
UNREACHABLE = "postgresql://roi@127.0.0.1:1/none"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--executive", "--format", "pdf"), "--format pdf needs --output FILE"),
        (("--format", "pdf"), "--format pdf goes with --executive"),
        (("--top-performers", "--format", "pdf"), "--format pdf goes with --executive"),
        (("--snapshots", "--format", "pdf"), "--format pdf goes with --executive"),
        (("--executive", "--since", "7d"), "--executive covers this UTC month to date"),
        (("--executive", "--at", "2026-01-01"), "--executive covers this UTC month to date"),
        (("--executive", "--snapshots"), "--snapshots goes with"),
        (("--executive", "--summary"), "not allowed with argument"),
        (("--executive", "--format", "docx"), "invalid choice: 'docx'"),
    ],
)
def test_executive_arguments_that_do_not_fit_get_one_line_and_exit_2(
    args: tuple[str, ...], message: str
) -> None:
    """Each mistake names what is wrong; the database is never reached (it is unreachable)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
    environment["ROI_DATABASE_URL"] = UNREACHABLE
    result = subprocess.run(
        [sys.executable, "-m", "worker", "report", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_executive_against_an_unreachable_database_fails_in_one_line(tmp_path: Path) -> None:
    """A well-formed request that cannot read exits 1 with one line and writes no file."""
    target = tmp_path / "summary.pdf"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
    environment["ROI_DATABASE_URL"] = UNREACHABLE
    result = subprocess.run(
        [sys.executable, "-m", "worker", "report", "--executive", "--format", "pdf", "--output",
         str(target)],
        capture_output=True, text=True, env=environment, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot connect to PostgreSQL" in result.stderr
    assert not target.exists()
