"""The machine's speed, measured the same way on every machine: a fixed amount of pure-Python
work (no I/O, no allocation-heavy library, no randomness), timed in this process.

The worker is bound by the interpreter (docs/benchmarks.md, "Where the time goes"), so a
loop of the same kinds of operations (dict and str work, integer arithmetic, small tuples)
says how fast this machine runs Python while the benchmark runs: measured at the start and
at the end of a run, next to the absolute figures, it tells a slow machine from a slow worker
and a quiet machine from a busy one (the two differ when something else took the CPUs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

ITERATIONS: Final = 500_000  # one operation = one iteration of _work's loop body
REPEATS: Final = 3  # the fastest of these counts: slower ones were interrupted


@dataclass(frozen=True, slots=True)
class Calibration:
    """The fastest of REPEATS timings of ITERATIONS operations."""

    seconds: float
    iterations: int = ITERATIONS

    @property
    def ops_per_second(self) -> float:
        return self.iterations / self.seconds if self.seconds else 0.0

    @property
    def microseconds_per_op(self) -> float:
        return self.seconds * 1e6 / self.iterations

    def text(self) -> str:
        return (
            f"{self.ops_per_second:,.0f} ops/s ({self.seconds * 1000:,.0f} ms for "
            f"{self.iterations:,} iterations)"
        )


def _work(iterations: int) -> int:
    """Deterministic: returns the same checksum on every machine and every run."""
    table: dict[str, int] = {}
    checksum = 0
    for i in range(iterations):
        key = f"pattern-{i % 200:03d}"
        table[key] = table.get(key, 0) + i % 7
        pair = (i, key)
        checksum = (checksum * 31 + len(pair[1]) + table[key]) % 1_000_000_007
    return checksum


def measure(iterations: int = ITERATIONS, repeats: int = REPEATS) -> Calibration:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        _work(iterations)
        best = min(best, time.perf_counter() - started)
    return Calibration(best, iterations)
