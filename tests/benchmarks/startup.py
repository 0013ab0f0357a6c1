"""How long `roi-worker` takes to start: `--help`, `--version`, `report --help` and, when
ROI_DATABASE_URL is set, `report` itself, each run as a new process (docs/benchmarks.md,
"Startup").

Usage (from the repository root):

    make bench-startup                             # 20 runs of each command
    .venv/bin/python -m tests.benchmarks.startup --runs 50
    .venv/bin/python -m tests.benchmarks.startup --help

Each round runs every command once, in turn, so that a burst of load on the machine touches
all of them alike; one unmeasured round first fills the file cache. The interpreter's bare
start (`python -c pass`) runs in the same rounds: the ratio to it holds better across machines
than the milliseconds do. `report` reads the summaries of whatever database ROI_DATABASE_URL
names (an empty one is fine: it says there is nothing to report). Prints the table; not a test
(pytest never collects this directory's modules), and Kafka is not used.

Exit codes: 0 every command exited 0 with a median start under the target; 1 a command failed
or missed it; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from worker.roi.formatting import table

TARGET_SECONDS: Final = 0.5  # issue 19: --help, --version and report start in under 0.5 s
TIMEOUT_SECONDS: Final = 60.0
REPO: Final = Path(__file__).parents[2]


@dataclass(frozen=True)
class Command:
    """One measured command line; `target` is False for the baseline."""

    label: str
    argv: tuple[str, ...]
    target: bool = True


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(prog="startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="measured runs per command (20)")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2")
    return args


def roi_worker() -> tuple[str, ...]:
    """The installed `roi-worker` script beside this interpreter, as users start it; `python
    -m worker` where there is none."""
    script = Path(sys.executable).parent / "roi-worker"
    return (str(script),) if script.exists() else (sys.executable, "-m", "worker")


def commands(database_url: str | None) -> list[Command]:
    worker = roi_worker()
    measured = [
        Command("python -c pass", (sys.executable, "-c", "pass"), target=False),
        Command("roi-worker --help", (*worker, "--help")),
        Command("roi-worker --version", (*worker, "--version")),
        Command("roi-worker report --help", (*worker, "report", "--help")),
    ]
    if database_url:
        measured.append(Command("roi-worker report", (*worker, "report")))
    return measured


def environment(database_url: str | None) -> dict[str, str]:
    """This environment without ROI_* settings, except the database for `report`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
    if database_url:
        env["ROI_DATABASE_URL"] = database_url
    return env


def seconds_to_run(command: Command, env: Mapping[str, str]) -> float:
    """Wall time from starting the process to its exit; raises when it exits non-zero."""
    started = time.perf_counter()
    result = subprocess.run(
        command.argv,
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    took = time.perf_counter() - started
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"{command.label} exited {result.returncode}: {message[0]}")
    return took


def p90(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def measure(
    measured: Sequence[Command], runs: int, env: Mapping[str, str]
) -> dict[str, list[float]]:
    for command in measured:  # the file cache, not measured
        seconds_to_run(command, env)
    times: dict[str, list[float]] = {command.label: [] for command in measured}
    for _ in range(runs):
        for command in measured:
            times[command.label].append(seconds_to_run(command, env))
    return times


def render(measured: Sequence[Command], times: Mapping[str, list[float]]) -> list[str]:
    bare = statistics.median(times[measured[0].label])
    rows = []
    for command in measured:
        median = statistics.median(times[command.label])
        verdict = ("yes" if median < TARGET_SECONDS else "NO") if command.target else ""
        rows.append(
            [
                command.label,
                f"{median * 1000:,.0f}",
                f"{p90(times[command.label]) * 1000:,.0f}",
                f"{median / bare:.1f}",
                verdict,
            ]
        )
    header = ["command", "median ms", "p90 ms", "x bare", f"< {TARGET_SECONDS} s"]
    return table(header, rows, "<>>><")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    database_url = os.environ.get("ROI_DATABASE_URL") or None
    measured = commands(database_url)
    try:
        times = measure(measured, args.runs, environment(database_url))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"startup: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.runs} runs of each command, {os.cpu_count()} CPUs, {' '.join(roi_worker())}")
    if database_url is None:
        print("report: skipped (ROI_DATABASE_URL is not set)")
    print("\n".join(render(measured, times)))
    slow = [c for c in measured if c.target and statistics.median(times[c.label]) >= TARGET_SECONDS]
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
