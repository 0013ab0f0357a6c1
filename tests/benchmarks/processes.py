"""Processes the benchmark starts and measures from outside: `roi-worker run`, `roi-worker
replay` and the benchmark's own consumers, each a child process.

CPU seconds are user + system time of the process (all its threads); peak RSS is the kernel's
high-water mark of its resident memory (VmHWM, or ru_maxrss of a child that has exited).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
POLL_SECONDS: Final = 0.1  # how often a throughput run checks the stored offsets
STOP_TIMEOUT_SECONDS: Final = 15.0
READY_TIMEOUT_SECONDS: Final = 60.0
STALL_SECONDS: Final = 60.0  # no offset stored for this long: the worker is stuck, say so

_STORED: Final = (
    "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = %s AND topic = %s"
)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one process used: CPU seconds (user + system) and peak resident bytes."""

    cpu_seconds: float
    peak_rss_bytes: int


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU since boot, from /proc/stat; idle and iowait
    count as not busy."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - fields[3] - fields[4], total


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of all CPUs' time that was busy between two machine_ticks()."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def usage_of(pid: int) -> Usage:
    """The usage so far of a live process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024  # kB
    return Usage(cpu, peak)


class Child:
    """A child process with its output in a log file; `wait` reaps it and keeps its usage."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            list(argv), env=dict(env), stdout=self._log, stderr=subprocess.STDOUT
        )
        self.usage: Usage | None = None  # once reaped
        self.returncode = -1  # once reaped

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        """Whether it still runs; never reaps it (WNOWAIT), so `wait` still gets its rusage."""
        if self.usage is not None:
            return False
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.pid, flags) is None

    def check_running(self, what: str) -> None:
        if not self.running():
            code = self.wait(0)
            raise RuntimeError(f"{what} exited early with {code}: ...{self.tail()}")

    def wait(self, timeout: float) -> int:
        """Reaps the process (os.wait4, for its own rusage); raises TimeoutError if it runs on."""
        if self.usage is not None:
            return self.returncode
        deadline = time.monotonic() + timeout
        while True:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.returncode = self.process.returncode = os.waitstatus_to_exitcode(status)
                self.usage = Usage(rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss * 1024)
                self._log.close()
                return self.returncode
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.log_path.stem} still runs after {timeout:g} s")
            time.sleep(0.02)

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        if self.running():
            self.process.send_signal(signal.SIGTERM)
        return self.wait(STOP_TIMEOUT_SECONDS)

    def kill(self) -> None:
        """Kills it if it still runs, and reaps it (cleanup after a failure or Ctrl-C)."""
        if self.running():
            self.process.kill()
        if self.usage is None:
            self.wait(10)

    def tail(self, characters: int = 2000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-characters:]


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@dataclass(frozen=True, slots=True)
class CatchUp:
    """A worker run from process start until its group had stored the whole topic."""

    seconds: float
    first_batch_seconds: float  # from start until the first offsets were stored
    usage: Usage  # up to the moment it had caught up
    # When every partition first had offsets stored (all processes at work), and how many
    # events were stored by then: the steady rate leaves out start-up and group joins.
    all_partitions_seconds: float = 0.0
    all_partitions_events: int = 0
    events: int = 0
    # The CPU used and events stored when the first offsets were stored: what follows is the
    # work per event without the interpreter's start-up and the group join.
    first_batch_cpu_seconds: float = 0.0
    first_batch_events: int = 0

    @property
    def cpu_per_event_after_first_batch(self) -> float | None:
        events = self.events - self.first_batch_events
        cpu = self.usage.cpu_seconds - self.first_batch_cpu_seconds
        return cpu / events if events > 0 else None

    @property
    def steady_rate(self) -> float:
        seconds = self.seconds - self.all_partitions_seconds
        return (self.events - self.all_partitions_events) / seconds if seconds > 0 else 0.0


def combined_usage(usages: Sequence[Usage]) -> Usage:
    """Several processes as one: CPU seconds added, the highest single peak RSS (each process
    has its own memory limit in a deployment, so the per-process peak is what counts)."""
    return Usage(sum(u.cpu_seconds for u in usages), max(u.peak_rss_bytes for u in usages))


def wait_stored(
    conn: psycopg.Connection[Any],
    children: Sequence[Child],
    group: str,
    topic: str,
    ends: Mapping[int, int],
    *,
    timeout: float,
) -> CatchUp:
    """Polls consumer_offsets every POLL_SECONDS until the group (one or more worker
    processes) has stored every partition up to `ends`; reads the workers' usage at that
    moment (combined_usage), timed from the first one's start. Raises if a worker exits,
    nothing is stored for STALL_SECONDS, or `timeout` passes."""
    first: float | None = None
    first_usage: tuple[float, int] = (0.0, 0)  # CPU seconds and events stored at `first`
    everywhere: tuple[float, int] | None = None
    started = min(child.started for child in children)
    deadline = started + timeout
    progress, moved = -1, started
    pids = ", ".join(str(child.pid) for child in children)
    while True:
        for child in children:
            child.check_running("the worker")
        stored = dict(conn.execute(_STORED, (group, topic)).fetchall())
        now = time.monotonic()
        done = sum(min(stored.get(p, 0), end) for p, end in ends.items())
        if stored and first is None:
            first = now - started
            cpu = sum(usage_of(child.pid).cpu_seconds for child in children)
            first_usage = (cpu, done)
        if everywhere is None and all(stored.get(p, 0) > 0 for p in ends):
            everywhere = (now - started, done)
        if all(stored.get(p, 0) >= end for p, end in ends.items()):
            usage = combined_usage([usage_of(child.pid) for child in children])
            at, before = everywhere or (now - started, done)
            return CatchUp(now - started, first or 0.0, usage, at, before, done, *first_usage)
        if done > progress:
            progress, moved = done, now
        if now > deadline or now - moved > STALL_SECONDS:
            why = f"in {timeout:g} s" if now > deadline else f"then nothing for {STALL_SECONDS:g} s"
            raise TimeoutError(
                f"the worker (pid {pids}) stored {done:,} of {sum(ends.values()):,} events "
                f"{why}; its log: {', '.join(str(c.log_path) for c in children)}"
            )
        time.sleep(POLL_SECONDS)


def wait_ready(child: Child, port: int) -> None:
    """Waits until the worker's /readyz answers 200."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    url = f"http://127.0.0.1:{port}/readyz"
    while True:
        child.check_running("the worker")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker was not ready after {READY_TIMEOUT_SECONDS:g} s")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
