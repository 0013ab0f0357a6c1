"""The read API benchmark: requests/s and latency of the summary and report endpoints with
500 patterns and 1,000,000 stored executions (docs/benchmarks.md, "Read API").

Usage (from the repository root; `make bench-api` sets the services' variables first):

    make bench-api                                 # 500 patterns, 1,000,000 executions
    make bench-api ARGS="--executions 100000 --seconds 5"
    .venv/bin/python -m tests.benchmarks.api_bench --help

Needs ROI_DATABASE_URL (a role that may create databases); Kafka is not used. The run creates
a database, fills it with INSERT ... SELECT from generate_series (deterministic: setseed, and
event_ids from md5 of the row number), rebuilds the summaries from it as `roi-worker
rebuild-summaries` does, starts `roi-worker api` on a free port of 127.0.0.1 and sends GET
requests to each endpoint from --clients threads with keep-alive connections for --seconds each.
The database is dropped at the end (also after a failure or Ctrl-C). Prints the table; not a
test (pytest never collects this directory's modules).

Exit codes: 0 every endpoint's p95 is under the target; 1 it is not, or a request failed;
2 bad arguments or missing services.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NoReturn

import psycopg

from tests.benchmarks.processes import free_port, python_module, wait_ready
from tests.benchmarks.report import git_revision
from tests.benchmarks.resources import Services
from worker.roi.formatting import table
from worker.roi.summaries import rebuild

TARGET_P95_SECONDS: Final = 0.200
DAYS: Final = 90  # executed_at spreads over this many days before now

_FILL: Final = """
INSERT INTO pattern_executions (
    event_id, schema_version, pattern_id, executed_at, success, execution_time_seconds,
    estimated_time_seconds, actual_cost, estimated_cost, source_topic, source_partition,
    source_offset)
SELECT md5(i::text)::uuid, 1, 'bench-pattern-' || lpad((i %% %(patterns)s)::text, 3, '0'),
       now() - random() * make_interval(days => %(days)s),
       random() < 0.9,
       round((random() * 300)::numeric, 1),
       round((600 + random() * 3000)::numeric, 1),
       round((random() * 3)::numeric, 2),
       round((5 + random() * 40)::numeric, 2),
       'bench', 0, i
FROM generate_series(1, %(executions)s) AS i
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(prog="api_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--patterns", type=int, default=500, help="default 500")
    parser.add_argument("--executions", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--seconds", type=float, default=15.0, help="per endpoint (default 15)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument(
        "--database-url",
        help="use this already filled database instead of creating one (not dropped)",
    )
    args = parser.parse_args(argv)
    if min(args.patterns, args.executions, args.clients) < 1 or args.seconds <= 0:
        parser.error("--patterns, --executions, --clients and --seconds must be positive")
    return args


@dataclass(frozen=True, slots=True)
class Result:
    """One endpoint's run: every request's latency in seconds, over `elapsed` seconds."""

    name: str
    latencies: list[float]
    elapsed: float
    errors: int

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0

    def cells(self) -> tuple[str, ...]:
        return (
            self.name,
            f"{len(self.latencies):,}",
            f"{len(self.latencies) / self.elapsed:,.0f}",
            *(f"{1000 * self.percentile(f):,.1f}" for f in (0.5, 0.95, 0.99)),
            f"{1000 * max(self.latencies, default=0):,.1f}",
            str(self.errors),
        )


def fill(url: str, patterns: int, executions: int) -> float:
    """Stores the executions and rebuilds the summaries from them; returns the seconds taken."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT setseed(0.42)")
        conn.execute(_FILL, {"patterns": patterns, "days": DAYS, "executions": executions})
        conn.execute("ANALYZE pattern_executions")
        rebuild(conn)
        conn.execute("VACUUM ANALYZE")
    return time.monotonic() - started


def load(port: int, name: str, paths: Sequence[str], seconds: float, clients: int) -> Result:
    """GETs `paths` in turn from `clients` threads for `seconds`; every answer must be 200."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        failed = 0
        i = offset
        while time.monotonic() < deadline:
            started = time.perf_counter()
            connection.request("GET", paths[i % len(paths)])
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            failed += response.status != 200
            i += clients
        connection.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(name, latencies, time.monotonic() - started, errors[0])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    database_url = os.environ.get("ROI_DATABASE_URL")
    if not database_url:
        print("api_bench: ROI_DATABASE_URL is not set (make bench-api sets it)", file=sys.stderr)
        return 2
    services = Services(os.environ.get("ROI_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9"), database_url)
    try:
        url = args.database_url
        if url is None:
            url = services.database("api")
            took = fill(url, args.patterns, args.executions)
            print(
                f"stored {args.executions:,} executions of {args.patterns} patterns and rebuilt "
                f"the summaries in {took:.1f} s"
            )
        port = free_port()
        env = {**os.environ, "ROI_DATABASE_URL": url, "ROI_LOG_LEVEL": "WARNING"}
        api = services.start(
            "api", python_module("worker", "api", "--host", "127.0.0.1", "--port", str(port)), env
        )
        wait_ready(api, port)
        ids = [f"bench-pattern-{n:03d}" for n in range(args.patterns)]
        scenarios = {
            "summary (limit=100)": ["/api/roi-tracking/summary"],
            "summary (limit=1000)": ["/api/roi-tracking/summary?limit=1000"],
            "report/{id}": [f"/api/roi-tracking/report/{i}" for i in ids],
            "pattern/{id}": [f"/api/roi-tracking/pattern/{i}" for i in ids],
            "top-performers": ["/api/roi-tracking/top-performers"],
        }
        load(port, "warm-up", [p for paths in scenarios.values() for p in paths[:5]], 2, 1)
        results = [
            load(port, name, paths, args.seconds, args.clients) for name, paths in scenarios.items()
        ]
    finally:
        services.close()
    header = ("endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors")
    print()
    print(
        f"{args.patterns} patterns, {args.executions:,} executions, {args.clients} clients, "
        f"{args.seconds:g} s per endpoint, git {git_revision()}, {os.cpu_count()} CPUs"
    )
    for line in table(header, [r.cells() for r in results], "<" + ">" * (len(header) - 1)):
        print(line)
    slow = [r.name for r in results if r.percentile(0.95) >= TARGET_P95_SECONDS or r.errors]
    if slow:
        print(f"p95 target ({TARGET_P95_SECONDS * 1000:.0f} ms) missed or errors: {slow}")
        return 1
    print(f"every p95 under {TARGET_P95_SECONDS * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
