"""Keeping the summaries right, and reporting them: `verify`, `rebuild-summaries` (also while
batches and a real worker write), and `roi-worker report` on a hand-computed data set."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Self

import psycopg
import pytest
from jsonschema import Draft202012Validator

from tests.cli_runner import Outcome, RoiWorker
from tests.fixtures.services import Services, new_database
from tests.helpers import wait_until
from tests.integration.events import expected_summary, sample_events
from tests.strategies import NOW
from tests.worker_harness import (
    PROCESS_TIMEOUT,
    Stream,
    WorkerProcess,
    end_offsets,
    produce,
    start,
    stored_offsets,
    wait_caught_up,
)
from worker.cli import report as cli_report
from worker.consume.write import BatchWriter, ValidEvent, WriteResult
from worker.contract.event import ExecutionEvent
from worker.contract.outcome import OUTCOMES
from worker.contract.validate import validate
from worker.db.migrate import load_migrations, migrate
from worker.roi.summaries import Drift, find_drift, rebuild
from worker.types import Partition, Source

ROOT = Path(__file__).parents[2]
REPORT_SCHEMA = ROOT / "schemas" / "roi-report.v1.json"
GROUP = "maintenance-tests"
LOCK_WAIT = 30.0  # seconds a test waits for a backend to reach (or leave) a lock wait
# No connection of these tests waits for a lock forever: a broken construction fails instead.
SESSION = "-c lock_timeout=60s"

_event_ids = itertools.count(1)


# --------------------------------------------------------------------------- helpers


def execution(
    pattern: str,
    executed_at: datetime,
    *,
    success: bool,
    run: str,
    estimate: str,
    cost: str,
    estimated_cost: str,
    now: datetime = NOW,
) -> ExecutionEvent:
    """A valid contract-v1 event with a deterministic event_id."""
    return validate(
        {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=next(_event_ids), version=4)),
            "pattern_id": pattern,
            "executed_at": executed_at.isoformat(),
            "success": success,
            "execution_time_seconds": Decimal(run),
            "estimated_time_seconds": Decimal(estimate),
            "actual_cost": cost,
            "estimated_cost": estimated_cost,
        },
        now=now,
    )


def batch(
    events: Sequence[ExecutionEvent], first_offset: int
) -> tuple[list[ValidEvent], dict[Partition, int]]:
    """BatchWriter.write's arguments for `events` read from partition t/0 at `first_offset`."""
    items = [
        ValidEvent.of(event, Source("t", 0, first_offset + index))
        for index, event in enumerate(events)
    ]
    return items, {("t", 0): first_offset + len(events)}


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=autocommit, options=SESSION)


def expected_totals(events: Sequence[ExecutionEvent]) -> dict[str, tuple[int, Decimal]]:
    """pattern_id -> (executions, net cost saved) by the methodology, in plain Python."""
    totals: dict[str, tuple[int, Decimal]] = {}
    for event in events:
        saved = event.estimated_cost - event.actual_cost if event.success else -event.actual_cost
        count, cost = totals.get(event.pattern_id, (0, Decimal(0)))
        totals[event.pattern_id] = (count + 1, cost + saved)
    return totals


def summary_totals(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, Decimal]]:
    rows = conn.execute(
        "SELECT pattern_id, total_executions, total_cost_saved_usd FROM pattern_roi_summary"
    ).fetchall()
    return {pattern: (count, cost) for pattern, count, cost in rows}


def lock_waits(observer: psycopg.Connection[Any], pid: int) -> list[tuple[str, str]]:
    """The locks backend `pid` is waiting for: (table or lock type, mode)."""
    rows = observer.execute(
        "SELECT coalesce(relation::regclass::text, locktype), mode FROM pg_locks "
        "WHERE pid = %s AND NOT granted",
        (pid,),
    ).fetchall()
    return [(name, mode) for name, mode in rows]


def tables_locked(observer: psycopg.Connection[Any], pid: int) -> set[tuple[str, str]]:
    """The table locks backend `pid` holds: (table, mode)."""
    rows = observer.execute(
        "SELECT relation::regclass::text, mode FROM pg_locks "
        "WHERE pid = %s AND granted AND locktype = 'relation'",
        (pid,),
    ).fetchall()
    return {(name, mode) for name, mode in rows}


def changed_columns(drift: Drift) -> dict[str, tuple[Any, Any]]:
    """column -> (stored, recomputed) for each column a drifted row gets wrong."""
    assert drift.stored is not None
    assert drift.expected is not None
    return {
        column: (drift.stored[column], value)
        for column, value in drift.expected.items()
        if drift.stored[column] != value
    }


@pytest.fixture
def migrated_url(services: Services) -> Iterator[str]:
    """A new, migrated, empty database for one test."""
    with new_database(services, "maintenance") as url:
        migrate(url, load_migrations())
        yield url


# --------------------------------------------------------------------------- verify, rebuild

D1 = datetime(2026, 5, 1, tzinfo=UTC)
D2 = datetime(2026, 5, 2, tzinfo=UTC)


def verify_events() -> list[ExecutionEvent]:
    return [
        # time saved 300 - 12.5 = 287.5, cost saved 25.00 - 0.42 = 24.58
        execution(
            "alpha",
            D1 + timedelta(hours=10),
            success=True,
            run="12.5",
            estimate="300",
            cost="0.42",
            estimated_cost="25.00",
        ),
        # failed: time saved -20, cost saved -1.00
        execution(
            "alpha",
            D1 + timedelta(hours=11),
            success=False,
            run="20",
            estimate="300",
            cost="1.00",
            estimated_cost="25.00",
        ),
        # time saved 60, cost saved 2.00
        execution(
            "alpha",
            D2 + timedelta(hours=9),
            success=True,
            run="30",
            estimate="90",
            cost="0.50",
            estimated_cost="2.50",
        ),
        # time saved 50, cost saved 4.00
        execution(
            "beta",
            D2 + timedelta(hours=10),
            success=True,
            run="10",
            estimate="60",
            cost="1.00",
            estimated_cost="5.00",
        ),
    ]


SUMMARY_ROWS = "SELECT * FROM pattern_roi_summary ORDER BY pattern_id"
DAILY_ROWS = "SELECT * FROM pattern_roi_daily ORDER BY pattern_id, day"


def without_last_updated(conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    cur = conn.execute(query)
    assert cur.description is not None
    keep = [i for i, column in enumerate(cur.description) if column.name != "last_updated"]
    return [tuple(row[i] for i in keep) for row in cur.fetchall()]


def test_verify_names_every_corrupted_row_and_rebuild_repairs_them(
    migrated_url: str, roi_worker: RoiWorker
) -> None:
    """verify exits 1 naming table, key, column, stored and recomputed value of each corrupted
    summary row; rebuild-summaries lists and repairs exactly those rows; verify then exits 0."""
    with connect(migrated_url) as conn:
        BatchWriter(conn, GROUP).write(*batch(verify_events(), 0))
        summary_before = without_last_updated(conn, SUMMARY_ROWS)
        daily_before = without_last_updated(conn, DAILY_ROWS)

        clean = roi_worker(migrated_url, "verify")
        assert (clean.code, clean.err) == (0, "")
        assert clean.out == "summaries match a full recompute of the stored executions\n"

        # alpha's cost saved is 24.58 - 1.00 + 2.00 = 25.58; a cent too much is drift.
        conn.execute(
            "UPDATE pattern_roi_summary SET total_cost_saved_usd = total_cost_saved_usd + 0.01"
            " WHERE pattern_id = 'alpha'"
        )
        # alpha on 2026-05-01: 1 of 2 succeeded, 287.5 - 20 = 267.5 s saved.
        conn.execute(
            "UPDATE pattern_roi_daily SET successful_executions = 2,"
            " total_time_saved_seconds = total_time_saved_seconds - 20"
            " WHERE pattern_id = 'alpha' AND day = '2026-05-01'"
        )
        conn.execute("DELETE FROM pattern_roi_daily WHERE pattern_id = 'beta'")
        conn.execute(
            "INSERT INTO pattern_roi_daily (pattern_id, day) VALUES ('ghost', '2026-05-03')"
        )

        zeros = ", ".join(
            f"{column} 0"
            for column in (
                "total_executions",
                "successful_executions",
                "total_time_saved_seconds",
                "total_cost_saved_usd",
                "total_actual_cost_usd",
                "total_estimated_cost_usd",
                "total_execution_time_seconds",
                "total_estimated_time_seconds",
                "negative_savings_executions",
                "cost_anomaly_executions",
                *(f"outcome_{outcome}_executions" for outcome in OUTCOMES),
                "quality_scored_executions",
                "total_quality_score",
                "token_measured_executions",
                "total_tokens_saved",
            )
        )
        report = [
            "pattern_roi_summary pattern_id=alpha",
            "  total_cost_saved_usd: stored 25.59, recomputed 25.58",
            "pattern_roi_daily pattern_id=alpha day=2026-05-01",
            "  successful_executions: stored 2, recomputed 1",
            "  total_time_saved_seconds: stored 247.5, recomputed 267.5",
            # beta's one execution: run 10 s of 60 estimated, cost 1.00 of 5.00 estimated.
            "pattern_roi_daily pattern_id=beta day=2026-05-02: missing (the executions give "
            "total_executions 1, successful_executions 1, total_time_saved_seconds 50, "
            "total_cost_saved_usd 4.00, total_actual_cost_usd 1.00, total_estimated_cost_usd "
            "5.00, total_execution_time_seconds 10, total_estimated_time_seconds 60, "
            "negative_savings_executions 0, cost_anomaly_executions 0, "
            "outcome_success_executions 1, outcome_failure_executions 0, "
            "outcome_partial_success_executions 0, outcome_error_executions 0, "
            "quality_scored_executions 0, total_quality_score 0, token_measured_executions 0, "
            "total_tokens_saved 0)",
            "pattern_roi_daily pattern_id=ghost day=2026-05-03: present but no execution has "
            f"this key ({zeros})",
        ]
        drifted = roi_worker(migrated_url, "verify")
        assert (drifted.code, drifted.err) == (1, "")
        assert drifted.out.splitlines() == [
            *report,
            "4 summary rows differ from the recompute; `roi-worker rebuild-summaries` repairs them",
        ]

        rebuilt = roi_worker(migrated_url, "rebuild-summaries")
        assert (rebuilt.code, rebuilt.err) == (0, "")
        *corrected, last = rebuilt.out.splitlines()
        assert corrected == [
            line if line.startswith("  ") else f"corrected {line}" for line in report
        ]
        assert re.fullmatch(
            r"rebuilt pattern_roi_summary and pattern_roi_daily in \d+\.\d s: 4 rows corrected",
            last,
        )

        again = roi_worker(migrated_url, "verify")
        assert (again.code, again.out) == (
            0,
            "summaries match a full recompute of the stored executions\n",
        )
        assert without_last_updated(conn, SUMMARY_ROWS) == summary_before
        assert without_last_updated(conn, DAILY_ROWS) == daily_before


def stored_first() -> list[ExecutionEvent]:
    """The batch committed before the rebuild: alpha x3 on two days, beta x2."""
    events = []
    for index, (pattern, day) in enumerate(
        [("alpha", D1), ("alpha", D1), ("alpha", D2), ("beta", D1), ("beta", D2)]
    ):
        events.append(
            execution(
                pattern,
                day + timedelta(minutes=index),
                success=index != 1,
                run=f"{10 + index}.5",
                estimate="120",
                cost=f"0.{index + 1}5",
                estimated_cost="3.00",
            )
        )
    return events


def racing_batch() -> list[ExecutionEvent]:
    """The batch racing the rebuild: adds to alpha's rows, a new alpha day, a new pattern."""
    third_day = D2 + timedelta(days=1)
    return [
        execution(
            "alpha",
            D2 + timedelta(hours=5),
            success=True,
            run="7",
            estimate="70",
            cost="0.33",
            estimated_cost="2.10",
        ),
        execution(
            "alpha",
            third_day,
            success=False,
            run="8",
            estimate="70",
            cost="0.44",
            estimated_cost="2.10",
        ),
        execution(
            "gamma",
            third_day,
            success=True,
            run="9",
            estimate="90",
            cost="1.01",
            estimated_cost="4.04",
        ),
    ]


# A wrong row the rebuild has to report and repair, whatever batch races it.
CORRUPT_ALPHA = (
    "UPDATE pattern_roi_summary SET total_executions = total_executions + 1"
    " WHERE pattern_id = 'alpha'"
)


def test_a_rebuild_started_during_an_uncommitted_batch_waits_for_it(migrated_url: str) -> None:
    """A rebuild started while a batch has inserted executions and incremented the summaries
    but not committed waits for the batch's lock, then recomputes including that batch.

    The batch's before_commit callback starts the real `rebuild` in a thread and returns only
    once pg_locks shows the rebuild's backend waiting for its EXCLUSIVE lock on
    pattern_roi_summary; the batch then commits and the rebuild proceeds."""
    first, second = stored_first(), racing_batch()
    with (
        connect(migrated_url) as observer,
        connect(migrated_url) as writer_conn,
        connect(migrated_url, autocommit=False) as rebuild_conn,  # as the CLI connects
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        writer = BatchWriter(writer_conn, GROUP)
        writer.write(*batch(first, 0))
        observer.execute(CORRUPT_ALPHA)
        rebuild_pid = rebuild_conn.info.backend_pid
        rebuilding: list[Future[list[Drift]]] = []

        def rebuild_while_uncommitted(result: WriteResult) -> None:
            assert len(result.inserted) == len(second)
            # Not committed: nobody else sees the batch's executions yet.
            assert observer.execute("SELECT count(*) FROM pattern_executions").fetchone() == (
                len(first),
            )
            rebuilding.append(pool.submit(rebuild, rebuild_conn))
            wait_until(
                lambda: (
                    lock_waits(observer, rebuild_pid) == [("pattern_roi_summary", "ExclusiveLock")]
                ),
                timeout=LOCK_WAIT,
                what="the rebuild to wait for the uncommitted batch",
            )

        writer.write(*batch(second, len(first)), before_commit=rebuild_while_uncommitted)
        drift = rebuilding[0].result(timeout=LOCK_WAIT)

        # The rebuild found only the corruption, and its recompute counted the batch.
        alpha = sum(event.pattern_id == "alpha" for event in first + second)
        assert [(d.table.name, d.key) for d in drift] == [("pattern_roi_summary", ("alpha",))]
        assert changed_columns(drift[0]) == {"total_executions": (alpha + 1, alpha)}
        assert find_drift(observer) == []
        assert summary_totals(observer) == expected_totals(first + second)


# The rebuild's DELETE FROM pattern_roi_summary waits for this advisory lock, which the test
# holds: the rebuild is then stopped after taking its locks and comparing, before replacing rows.
HOLD_KEY = 732_001
HOLD_FUNCTION = f"""
CREATE FUNCTION test_hold_rebuild() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({HOLD_KEY});
    RETURN NULL;
END
$$
"""
HOLD_TRIGGER = (
    "CREATE TRIGGER test_hold_rebuild BEFORE DELETE ON pattern_roi_summary "
    "FOR EACH STATEMENT EXECUTE FUNCTION test_hold_rebuild()"
)


def test_a_batch_during_a_rebuild_waits_and_adds_on_top_of_the_rebuilt_rows(
    migrated_url: str,
) -> None:
    """A batch written while a rebuild holds its locks waits for the rebuild to commit, then
    adds its rows on top of the rebuilt ones: nothing lost, nothing counted twice.

    The real `rebuild` runs in a thread; a statement trigger on pattern_roi_summary makes its
    DELETE wait for an advisory lock the test holds, so it is stopped right after locking
    both tables EXCLUSIVE and comparing. The batch is then started in another thread and
    waits (pg_locks) for the summary table; the test releases the advisory lock."""
    first, second = stored_first(), racing_batch()
    with (
        connect(migrated_url) as observer,
        connect(migrated_url) as writer_conn,
        connect(migrated_url, autocommit=False) as rebuild_conn,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        writer = BatchWriter(writer_conn, GROUP)
        writer.write(*batch(first, 0))
        observer.execute(CORRUPT_ALPHA)
        observer.execute(HOLD_FUNCTION)
        observer.execute(HOLD_TRIGGER)
        rebuild_pid, writer_pid = rebuild_conn.info.backend_pid, writer_conn.info.backend_pid
        observer.execute("SELECT pg_advisory_lock(%s)", (HOLD_KEY,))
        try:
            rebuilding = pool.submit(rebuild, rebuild_conn)
            wait_until(
                lambda: lock_waits(observer, rebuild_pid) == [("advisory", "ExclusiveLock")],
                timeout=LOCK_WAIT,
                what="the rebuild to stop at its DELETE",
            )
            assert {
                ("pattern_roi_summary", "ExclusiveLock"),
                ("pattern_roi_daily", "ExclusiveLock"),
            } <= tables_locked(observer, rebuild_pid)

            writing = pool.submit(writer.write, *batch(second, len(first)))
            wait_until(
                lambda: (
                    lock_waits(observer, writer_pid)
                    == [("pattern_roi_summary", "RowExclusiveLock")]
                ),
                timeout=LOCK_WAIT,
                what="the batch to wait for the rebuild",
            )
            assert not rebuilding.done()
        finally:
            observer.execute("SELECT pg_advisory_unlock_all()")
        drift = rebuilding.result(timeout=LOCK_WAIT)
        result = writing.result(timeout=LOCK_WAIT)

        # The rebuild compared before the batch stored anything: its recompute lacks the batch.
        alpha_before = sum(event.pattern_id == "alpha" for event in first)
        assert [(d.table.name, d.key) for d in drift] == [("pattern_roi_summary", ("alpha",))]
        assert changed_columns(drift[0]) == {"total_executions": (alpha_before + 1, alpha_before)}
        assert len(result.inserted) == len(second)
        assert find_drift(observer) == []
        assert summary_totals(observer) == expected_totals(first + second)


def test_rebuilds_while_a_worker_consumes_leave_exact_summaries(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Rebuilds run again and again while a real worker stores 3,000 events find no drift and
    leave summaries equal to the methodology and to a recompute."""
    # For the first rebuild the worker is provably mid-stream: the test holds a SHARE lock on
    # pattern_executions, so the worker's next batch waits (pg_locks) before touching the
    # summaries; the rebuild runs and the stored offsets still stop at the first chunk. Two
    # chunks wait behind that batch; the remaining ones are produced between rebuilds, and
    # rebuilds repeat until the worker (20 events per batch) has stored everything.
    samples = sample_events(3000)
    chunks = [samples[i : i + 500] for i in range(0, len(samples), 500)]
    worker = start(stream, workers, tmp_path, ROI_BATCH_MAX_MESSAGES="20")
    worker.wait_ready()
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in chunks[0]])
    wait_caught_up(stream)

    url = stream.database_url
    drifts: list[list[Drift]] = []
    with (
        connect(url) as observer,
        connect(url, autocommit=False) as gate,
        connect(url, autocommit=False) as rebuild_conn,  # as the CLI connects
    ):
        with gate.transaction():
            gate.execute("LOCK TABLE pattern_executions IN SHARE MODE")
            for chunk in chunks[1:3]:
                produce(stream.bootstrap_servers, stream.topic, [s.message for s in chunk])
            wait_until(
                lambda: observer.execute(
                    "SELECT 1 FROM pg_locks WHERE NOT granted AND mode = 'RowExclusiveLock'"
                    " AND relation = 'pattern_executions'::regclass"
                ).fetchone(),
                timeout=LOCK_WAIT,
                what="the worker's batch to wait for pattern_executions",
            )
            drifts.append(rebuild(rebuild_conn))
            # The rebuild has committed; the worker still cannot have stored chunks 1 and 2.
            stored = stored_offsets(url, stream.group_id, stream.topic)
            ends = end_offsets(stream.bootstrap_servers, stream.topic)
            assert sum(stored.values()) == len(chunks[0])
            assert sum(ends.values()) == sum(len(chunk) for chunk in chunks[:3])

        for chunk in chunks[3:]:
            produce(stream.bootstrap_servers, stream.topic, [s.message for s in chunk])
            drifts.append(rebuild(rebuild_conn))

        ends = end_offsets(stream.bootstrap_servers, stream.topic)
        assert sum(ends.values()) == len(samples)

        def rebuilt_and_caught_up() -> bool:
            assert worker.process.poll() is None, worker.log()[-3000:]
            drifts.append(rebuild(rebuild_conn))
            stored = stored_offsets(url, stream.group_id, stream.topic)
            return all(stored.get(partition, 0) >= end for partition, end in ends.items())

        wait_until(
            rebuilt_and_caught_up, timeout=PROCESS_TIMEOUT, what="the worker to store every event"
        )
        assert len(drifts) >= 3
        assert [line for drift in drifts for row in drift for line in row.describe()] == []
        assert find_drift(observer) == []
        rows = observer.execute(
            "SELECT pattern_id, total_executions, successful_executions,"
            " total_time_saved_seconds, total_cost_saved_usd FROM pattern_roi_summary"
        ).fetchall()
        assert {row[0]: tuple(row[1:]) for row in rows} == expected_summary(samples)
    assert worker.stop() == 0


# --------------------------------------------------------------------------- report

# Reports use today's UTC date; the CLI's clock is frozen at REPORT_NOW (made at module set-up)
# so a run across midnight cannot move the windows.


@dataclass(frozen=True)
class ReportData:
    url: str
    now: datetime
    events: tuple[ExecutionEvent, ...]

    @property
    def today(self) -> date:
        return self.now.date()

    def execution_times(self, pattern: str, since: date | None = None) -> list[Decimal]:
        return [
            e.execution_time_seconds
            for e in self.events
            if e.pattern_id == pattern and (since is None or e.executed_at.date() >= since)
        ]


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def report_events(now: datetime) -> list[ExecutionEvent]:
    """Three patterns, today and 8-10 days ago (the window before `--since 7d`).

    excellent, i = 1..21: run i s of i + 300 estimated; cost 1.25 of 5.00 estimated; i <= 11
        today, the rest 9 days ago; i = 21 failed. 20 successes save 300 s and 3.75 each, the
        failure loses 21 s and 1.25.
    failing, j = 1..12: run 100 s of 60 estimated, cost 2.00 of 1.50 estimated (j = 12: 0.15,
        a cost anomaly); odd j succeed (saving -40 s and -0.50: negative savings), even j fail
        (-100 s, -2.00); j <= 6 today, the rest 10 days ago.
    sparse, k = 1..3, today: run 10 s of 70, cost 0.50 of 2.00, all succeed (60 s, 1.50 each).
    """
    today = now.date()
    events = []
    for i in range(21, 0, -1):  # stored in reverse: percentiles must sort, not trust order
        day = today if i <= 11 else today - timedelta(days=9)
        events.append(
            execution(
                "excellent",
                midnight(day) + timedelta(minutes=i),
                success=i != 21,
                run=str(i),
                estimate=str(i + 300),
                cost="1.25",
                estimated_cost="5.00",
                now=now,
            )
        )
    for j in range(1, 13):
        day = today if j <= 6 else today - timedelta(days=10)
        events.append(
            execution(
                "failing",
                midnight(day) + timedelta(minutes=j),
                success=j % 2 == 1,
                run="100",
                estimate="60",
                cost="2.00",
                estimated_cost="0.15" if j == 12 else "1.50",
                now=now,
            )
        )
    for k in range(1, 4):
        events.append(
            execution(
                "sparse",
                midnight(today) + timedelta(minutes=100 + k),
                success=True,
                run="10",
                estimate="70",
                cost="0.50",
                estimated_cost="2.00",
                now=now,
            )
        )
    return events


@pytest.fixture(scope="module")
def report_data(services: Services) -> Iterator[ReportData]:
    """The hand-computed data set of report_events, stored by BatchWriter in a new database."""
    now = datetime.now(UTC).replace(microsecond=0)
    events = report_events(now)
    with new_database(services, "report") as url:
        migrate(url, load_migrations())
        with connect(url) as conn:
            BatchWriter(conn, GROUP).write(*batch(events, 0))
            assert find_drift(conn) == []
        yield ReportData(url, now, tuple(events))


def frozen_clock(moment: datetime) -> type[datetime]:
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Self:
            return cls.fromtimestamp(moment.timestamp(), tz)

    return FrozenClock


@pytest.fixture
def report(
    report_data: ReportData, roi_worker: RoiWorker, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Outcome]:
    """`roi-worker report ARGS` on the report data set, at the frozen REPORT_NOW."""
    monkeypatch.setattr(cli_report, "datetime", frozen_clock(report_data.now))
    return lambda *args: roi_worker(report_data.url, "report", *args)


def nearest_rank(values: Sequence[Decimal], fraction: Fraction) -> Decimal:
    """The smallest value v such that at least `fraction` of the values are <= v."""
    ordered = sorted(values)
    return next(v for n, v in enumerate(ordered, 1) if Fraction(n, len(ordered)) >= fraction)


def percentiles(values: Sequence[Decimal]) -> dict[str, str]:
    return {
        name: str(nearest_rank(values, fraction))
        for name, fraction in (
            ("p50", Fraction(1, 2)),
            ("p95", Fraction(95, 100)),
            ("p99", Fraction(99, 100)),
        )
    }


def json_report(outcome: Outcome) -> dict[str, Any]:
    assert (outcome.code, outcome.err) == (0, "")
    document: dict[str, Any] = json.loads(outcome.out)
    Draft202012Validator(json.loads(REPORT_SCHEMA.read_text())).validate(document)
    return document


def test_report_summary_text_shows_the_hand_computed_figures(
    report: Callable[..., Outcome],
) -> None:
    """report --summary shows the hand-computed figures of the excellent pattern, the failed
    one with its recommendation and flags, not the sparse one, and the overall metrics."""
    outcome = report("--summary")
    assert (outcome.code, outcome.err) == (0, "")
    rule = "=" * 80
    # The month-to-date block's figures follow today's date (tests/unit/roi/test_month_to_date.py
    # pins them with a fixed clock): here, where it goes and the snapshot block after it.
    lines = outcome.out.splitlines()
    tracking = lines.index("MONTH TO DATE (UTC calendar month)")
    assert lines[tracking + 1].startswith("Saved $"), lines
    snapshots = lines.index(
        "SNAPSHOTS (latest 30-day window at day 30, 60 or 90 against the first 7 days)"
    )
    assert lines[snapshots:] == [
        lines[snapshots],
        "off_track 0, at_risk 0, insufficient_data 0, on_track 0; not yet at day 30: 3",
        "  excellent: not yet at day 30",
        "  failing: not yet at day 30",
        "  sparse: not yet at day 30",
    ]
    assert lines[: tracking - 1] == [
        rule,
        "PATTERN ROI SUMMARY",
        rule,
        "",
        "TOP PERFORMERS (by ROI)",
        "1. Pattern: excellent",
        # 20 / 21 = 95.238 %
        "   Executions: 21 (20 successful, 95.2% success rate)",
        # 20 * 300 - 21 = 5979 s = 99.65 minutes (under 2 hours: minutes, as in seed 000)
        "   Time saved: 5,979 seconds (99.7 minutes)",
        # 20 * 3.75 - 1.25
        "   Cost saved: $73.75",
        # 100 * 73.75 / (21 * 1.25) = 280.95 %
        "   ROI: 281%",
        "   Rating: EXCELLENT ⭐⭐⭐",
        "",
        "UNDERPERFORMERS (needs attention)",
        "1. Pattern: failing",
        "   Executions: 12 (6 successful, 50.0% success rate)",
        # 6 * -40 + 6 * -100
        "   Time saved: -840 seconds (NEGATIVE)",
        # 6 * -0.50 + 6 * -2.00
        "   Cost saved: -$15.00 (NEGATIVE)",
        # 100 * -15.00 / 24.00 = -62.5, half up (away from zero)
        "   ROI: -63%",
        "   Rating: FAILED ❌",
        "   Recommendation: Revoke approval and investigate failures",
        "   Flags: 6 with negative savings (50.0%), 1 cost anomaly",
        "",
        "OVERALL METRICS",
        "Total patterns tracked: 3",
        # 21 + 12 + 3
        "Total executions: 36",
        # 5979 - 840 + 3 * 60 = 5319 s = 88.65 minutes, half up
        "Total time saved: 5,319 seconds (88.7 minutes)",
        # 73.75 - 15.00 + 3 * 1.50
        "Total cost saved: $63.25",
        # per execution: (20 + 6 + 3) / 36 = 80.56 %
        "Average success rate: 80.6%",
        # 6 / 36
        "Executions with negative savings: 6 (16.7%)",
        "Cost anomalies (actual cost > 10x estimate): 1",
        "Outcomes: 29 success, 7 failure, 0 partial_success, 0 error",
        "Quality: n/a (no execution carries a quality_score)",
        "Tokens saved: n/a (no execution gives both actual_tokens and baseline_tokens)",
    ]


# Every figure of report_events over all time, derived ones rounded half up to 6 places.
# Wilson lower bounds: (p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959963984540054.
# Trend: rate change = weighted least-squares slope of the daily success rates times the days
# spanned; margin = z · span · sqrt(r(1-r) · w / (w·Σwx² - (Σwx)²)) with r the overall rate.
EXCELLENT = {
    "pattern_id": "excellent",
    "executions": 21,
    "successful_executions": 20,
    "success_rate": "0.952381",  # 20 / 21
    "time_saved_seconds": "5979",
    "cost_saved_usd": "73.75",
    "investment_usd": "26.25",  # 21 * 1.25
    "estimated_cost_usd": "105.00",  # 21 * 5.00
    "execution_time_seconds": "231",  # 1 + ... + 21
    "estimated_time_seconds": "6531",  # 231 + 21 * 300
    "average_time_saved_seconds": "284.714286",  # 5979 / 21
    "average_cost_saved_usd": "3.511905",  # 73.75 / 21
    "roi_percentage": "280.952381",  # 100 * 73.75 / 26.25
    "negative_savings_executions": 0,
    "cost_anomaly_executions": 0,
    "rating": "excellent",
    "recommendation": "Keep approved; a candidate for wider rollout",
    "wilson_lower_bound": "0.773306",  # 20 of 21
    "trend": "stable",  # |0.1| is not beyond its margin
    # 9 of 10 on day 0, 11 of 11 on day 9: slope (21*99 - 99*20) / (21*891 - 99²) per day, * 9
    "success_rate_change": "0.100000",
    "success_rate_change_margin": "0.182372",  # z * 9 * sqrt((20/21)(1/21) * 21 / 8910)
    "outcome_success_executions": 20,  # no event sends an outcome: derived
    "outcome_failure_executions": 1,
    "outcome_partial_success_executions": 0,
    "outcome_error_executions": 0,
    "quality_scored_executions": 0,  # no event carries a quality_score or token counts
    "quality_score_sum": "0",
    "quality_score_mean": None,
    "token_measured_executions": 0,
    "tokens_saved": 0,
    "quality_trend": "stable",
    "quality_score_change": None,
    "quality_score_change_margin": None,
    "execution_time_percentiles": {"p50": "11", "p95": "20", "p99": "21"},  # nearest rank
    "previous": None,
    "change": None,
}
FAILING = {
    "pattern_id": "failing",
    "executions": 12,
    "successful_executions": 6,
    "success_rate": "0.500000",
    "time_saved_seconds": "-840",
    "cost_saved_usd": "-15.00",
    "investment_usd": "24.00",
    "estimated_cost_usd": "16.65",  # 11 * 1.50 + 0.15
    "execution_time_seconds": "1200",
    "estimated_time_seconds": "720",
    "average_time_saved_seconds": "-70.000000",
    "average_cost_saved_usd": "-1.250000",
    "roi_percentage": "-62.500000",
    "negative_savings_executions": 6,
    "cost_anomaly_executions": 1,  # 2.00 > 10 * 0.15
    "rating": "failed",
    "recommendation": "Revoke approval and investigate failures",
    "wilson_lower_bound": "0.253782",  # 6 of 12
    "trend": "stable",
    "success_rate_change": "0.000000",  # 3 of 6 on both days
    "success_rate_change_margin": "0.565793",  # z * 10 * sqrt(0.25 * 12 / 3600)
    "outcome_success_executions": 6,  # no event sends an outcome: derived
    "outcome_failure_executions": 6,
    "outcome_partial_success_executions": 0,
    "outcome_error_executions": 0,
    "quality_scored_executions": 0,  # no event carries a quality_score or token counts
    "quality_score_sum": "0",
    "quality_score_mean": None,
    "token_measured_executions": 0,
    "tokens_saved": 0,
    "quality_trend": "stable",
    "quality_score_change": None,
    "quality_score_change_margin": None,
    "execution_time_percentiles": {"p50": "100", "p95": "100", "p99": "100"},
    "previous": None,
    "change": None,
}
SPARSE = {
    "pattern_id": "sparse",
    "executions": 3,
    "successful_executions": 3,
    "success_rate": "1.000000",
    "time_saved_seconds": "180",
    "cost_saved_usd": "4.50",
    "investment_usd": "1.50",
    "estimated_cost_usd": "6.00",
    "execution_time_seconds": "30",
    "estimated_time_seconds": "210",
    "average_time_saved_seconds": "60.000000",
    "average_cost_saved_usd": "1.500000",
    "roi_percentage": "300.000000",
    "negative_savings_executions": 0,
    "cost_anomaly_executions": 0,
    "rating": "insufficient_data",
    "recommendation": "Keep collecting executions before judging this pattern",
    "wilson_lower_bound": "0.438503",  # 3 of 3 (docs: about 0.44)
    "trend": "stable",
    "success_rate_change": None,  # one day only
    "success_rate_change_margin": None,
    "outcome_success_executions": 3,  # no event sends an outcome: derived
    "outcome_failure_executions": 0,
    "outcome_partial_success_executions": 0,
    "outcome_error_executions": 0,
    "quality_scored_executions": 0,  # no event carries a quality_score or token counts
    "quality_score_sum": "0",
    "quality_score_mean": None,
    "token_measured_executions": 0,
    "tokens_saved": 0,
    "quality_trend": "stable",
    "quality_score_change": None,
    "quality_score_change_margin": None,
    "execution_time_percentiles": {"p50": "10", "p95": "10", "p99": "10"},
    "previous": None,
    "change": None,
}


def test_report_summary_json_is_valid_and_exact(
    report: Callable[..., Outcome], report_data: ReportData
) -> None:
    """report --summary --format json validates against roi-report.v1 and carries the
    hand-computed sums exactly and the derived figures rounded half up to 6 places."""
    document = json_report(report("--summary", "--format", "json"))
    today = report_data.today

    assert datetime.fromisoformat(document.pop("generated_at")) == report_data.now
    assert document.pop("window") == {
        "since": None,
        "until": today.isoformat(),
        "days": None,
        "previous_since": None,
        "previous_until": None,
    }
    assert document.pop("overall") == {
        "executions": 36,
        "successful_executions": 29,
        "success_rate": "0.805556",  # 29 / 36
        "time_saved_seconds": "5319",
        "cost_saved_usd": "63.25",
        "investment_usd": "51.75",  # 26.25 + 24.00 + 1.50
        "estimated_cost_usd": "127.65",  # 105.00 + 16.65 + 6.00
        "execution_time_seconds": "1461",  # 231 + 1200 + 30
        "estimated_time_seconds": "7461",  # 6531 + 720 + 210
        "average_time_saved_seconds": "147.750000",  # 5319 / 36
        "average_cost_saved_usd": "1.756944",  # 63.25 / 36 = 1.7569444...
        "roi_percentage": "122.222222",  # 100 * 63.25 / 51.75
        "negative_savings_executions": 6,
        "cost_anomaly_executions": 1,
        "outcome_success_executions": 29,
        "outcome_failure_executions": 7,
        "outcome_partial_success_executions": 0,
        "outcome_error_executions": 0,
        "quality_scored_executions": 0,
        "quality_score_sum": "0",
        "quality_score_mean": None,
        "token_measured_executions": 0,
        "tokens_saved": 0,
        "patterns": 3,
        "previous": None,
        "change": None,
    }
    _check_month_to_date(document.pop("month_to_date"), report_data)
    assert [
        (entry["pattern_id"], entry["day"], entry["status"])
        for entry in document.pop("latest_snapshots")
    ] == [("excellent", None, None), ("failing", None, None), ("sparse", None, None)]
    patterns = document.pop("patterns")
    assert document == {
        "report_version": 1,
        "selection": "summary",
        "min_executions": 10,
        "top_performers": ["excellent"],
        "underperformers": ["failing"],
    }

    # first/last execution: compared as instants (the offset follows the server's TimeZone).
    spans = {
        "excellent": (
            midnight(today - timedelta(days=9)) + timedelta(minutes=12),
            midnight(today) + timedelta(minutes=11),
        ),
        "failing": (
            midnight(today - timedelta(days=10)) + timedelta(minutes=7),
            midnight(today) + timedelta(minutes=6),
        ),
        "sparse": (
            midnight(today) + timedelta(minutes=101),
            midnight(today) + timedelta(minutes=103),
        ),
    }
    for entry in patterns:
        first = datetime.fromisoformat(entry.pop("first_executed_at"))
        last = datetime.fromisoformat(entry.pop("last_executed_at"))
        assert (first, last) == spans[entry["pattern_id"]]
    assert patterns == [EXCELLENT, FAILING, SPARSE]
    assert EXCELLENT["execution_time_percentiles"] == percentiles(
        report_data.execution_times("excellent")
    )


def _check_month_to_date(block: dict[str, Any], data: ReportData) -> None:
    """The month-to-date block against sums of the events themselves, at the frozen now:
    this month's, the same elapsed span of the previous month's and the last 30 days'."""
    now = data.now
    month = midnight(now.date().replace(day=1))
    previous = midnight((month - timedelta(days=1)).date().replace(day=1))
    previous_end = min(previous + (now - month), month)

    def saved(start: datetime, end: datetime) -> tuple[str, int]:
        runs = [e for e in data.events if start <= e.executed_at < end]
        total = sum(
            (e.estimated_cost - e.actual_cost if e.success else -e.actual_cost for e in runs),
            Decimal(0),
        )
        return str(total), len(runs)

    assert datetime.fromisoformat(block["as_of"]) == now
    assert datetime.fromisoformat(block["month_start"]) == month
    assert datetime.fromisoformat(block["previous_end"]) == previous_end
    assert (block["cost_saved_usd"], block["executions"]) == saved(month, now)
    assert (block["previous_cost_saved_usd"], block["previous_executions"]) == saved(
        previous, previous_end
    )
    trailing, _ = saved(now - timedelta(days=30), now)
    assert block["trailing_30_days_cost_saved_usd"] == trailing


def test_report_since_7d_splits_recent_and_previous_executions(
    report: Callable[..., Outcome], report_data: ReportData
) -> None:
    """report --since 7d counts only today's executions, puts those of 8-10 days ago in
    `previous`, and `change` is the difference of the two."""
    document = json_report(report("--since", "7d", "--format", "json"))
    today = report_data.today
    assert document["window"] == {
        "since": (today - timedelta(days=6)).isoformat(),
        "until": today.isoformat(),
        "days": 7,
        "previous_since": (today - timedelta(days=13)).isoformat(),
        "previous_until": (today - timedelta(days=7)).isoformat(),
    }

    def figures(entry: dict[str, Any]) -> tuple[Any, ...]:
        keys = ("executions", "successful_executions", "time_saved_seconds", "cost_saved_usd")
        return (*(entry[key] for key in keys), entry["roi_percentage"])

    by_id = {entry["pattern_id"]: entry for entry in document["patterns"]}
    assert list(by_id) == ["excellent", "failing", "sparse"]
    # excellent: today i = 1..11 all succeed (11 * 300 s, 11 * 3.75, ROI 100 * 41.25 / 13.75);
    # before, i = 12..21 with the failure (9 * 300 - 21 s, 9 * 3.75 - 1.25, 100 * 32.50 / 12.50).
    excellent = by_id["excellent"]
    assert figures(excellent) == (11, 11, "3300", "41.25", "300.000000")
    assert figures(excellent["previous"]) == (10, 9, "2679", "32.50", "260.000000")
    assert excellent["change"] == {
        "executions": 1,
        "success_rate": "0.100000",  # 1 - 0.9
        "time_saved_seconds": "621",
        "cost_saved_usd": "8.75",
        "roi_percentage": "40.000000",
    }
    assert excellent["rating"] == "excellent"
    assert excellent["execution_time_percentiles"] == {"p50": "6", "p95": "11", "p99": "11"}
    assert excellent["execution_time_percentiles"] == percentiles(
        report_data.execution_times("excellent", since=today - timedelta(days=6))
    )
    # failing: 3 of 6 succeed in both windows (3 * -40 + 3 * -100 s, 3 * -0.50 + 3 * -2.00).
    failing = by_id["failing"]
    assert figures(failing) == (6, 3, "-420", "-7.50", "-62.500000")
    assert figures(failing["previous"]) == (6, 3, "-420", "-7.50", "-62.500000")
    assert failing["change"] == {
        "executions": 0,
        "success_rate": "0.000000",
        "time_saved_seconds": "0",
        "cost_saved_usd": "0.00",
        "roi_percentage": "0.000000",
    }
    assert failing["rating"] == "insufficient_data"  # 6 executions in the window
    # sparse: nothing before the window.
    sparse = by_id["sparse"]
    assert figures(sparse) == (3, 3, "180", "4.50", "300.000000")
    assert figures(sparse["previous"]) == (0, 0, "0", "0", None)
    assert sparse["change"] == {
        "executions": 3,
        "success_rate": None,
        "time_saved_seconds": "180",
        "cost_saved_usd": "4.50",
        "roi_percentage": None,
    }

    overall = document["overall"]
    assert (overall["executions"], overall["cost_saved_usd"]) == (20, "38.25")
    assert (overall["previous"]["executions"], overall["previous"]["cost_saved_usd"]) == (
        16,
        "25.00",
    )
    assert (overall["change"]["executions"], overall["change"]["cost_saved_usd"]) == (4, "13.25")
    assert (document["top_performers"], document["underperformers"]) == (["excellent"], [])


def test_report_one_pattern_json_has_its_nearest_rank_percentiles(
    report: Callable[..., Outcome], report_data: ReportData
) -> None:
    """report --pattern-id X --format json holds exactly that pattern, with the nearest-rank
    p50/p95/p99 of its stored execution times."""
    document = json_report(report("--pattern-id", "excellent", "--format", "json"))
    assert document["selection"] == "pattern"
    assert [entry["pattern_id"] for entry in document["patterns"]] == ["excellent"]
    timing = document["patterns"][0]["execution_time_percentiles"]
    # 21 times 1..21 s: p50 is the 11th (11/21 >= 0.5 > 10/21), p95 the 20th, p99 the 21st.
    assert timing == {"p50": "11", "p95": "20", "p99": "21"}
    assert timing == percentiles(report_data.execution_times("excellent"))


def test_report_unknown_pattern_fails_with_one_line(report: Callable[..., Outcome]) -> None:
    """report --pattern-id of a pattern never stored exits 1 with one line on stderr."""
    outcome = report("--pattern-id", "unknown")
    assert (outcome.code, outcome.out) == (1, "")
    assert outcome.err.splitlines() == [
        "roi-worker: error: no pattern 'unknown': no execution of it is stored"
    ]


@pytest.mark.parametrize("pattern_id", ["\udcff", "has space", "", "x" * 201])
def test_report_impossible_pattern_ids_fail_with_one_line(
    report: Callable[..., Outcome], pattern_id: str
) -> None:
    """An id no event could carry (not UTF-8, outside the contract) is unknown, not a crash."""
    outcome = report("--pattern-id", pattern_id)
    assert outcome.code == 1
    (line,) = outcome.err.splitlines()
    assert line.startswith("roi-worker: error: no pattern ")


def test_report_on_an_empty_database_says_there_is_no_data(
    migrated_url: str, roi_worker: RoiWorker
) -> None:
    """report on a migrated database without executions exits 0 saying there is nothing."""
    outcome = roi_worker(migrated_url, "report")
    assert outcome == Outcome(0, "no executions stored over all time yet: nothing to report\n", "")


def test_report_markdown_file_has_every_section(
    report: Callable[..., Outcome], tmp_path: Path
) -> None:
    """report --report --output PATH writes the full Markdown report with every section."""
    path = tmp_path / "r.md"
    outcome = report("--report", "--output", str(path))
    assert outcome == Outcome(0, f"wrote {path}: 3 patterns, over all time\n", "")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if line.startswith("#")] == [
        "# Pattern ROI report",
        "## Overall",
        "## Top performers (by ROI)",
        "## Underperformers (needs attention)",
        "## All patterns",
        "## Flags",
    ]
    assert (
        "| 1 | `excellent` | 21 | 95.2% | 99.7 minutes | $73.75 | 281% | EXCELLENT ⭐⭐⭐ "
        "| Keep approved; a candidate for wider rollout |"
    ) in lines
    assert (
        "| 1 | `failing` | 12 | 50.0% | -14 minutes | -$15.00 | -63% | FAILED ❌ "
        "| Revoke approval and investigate failures |"
    ) in lines
    assert "| `failing` | 6 (50.0%) | 1 |" in lines
