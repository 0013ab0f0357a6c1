"""Snapshots and month to date read from stored executions equal the pure rules applied to the
same executions in Python (worker.roi.snapshots, worker.roi.month_to_date)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.helpers import CountingCursor
from tests.integration.history import (
    EXPECTED_LATEST,
    Run,
    day0,
    history,
    midnight,
    store,
    totals_between,
    totals_of_days,
)
from worker.db.migrate import load_migrations, migrate
from worker.roi.analytics import snapshot
from worker.roi.methodology import Totals
from worker.roi.month_to_date import month_spans, read_month_to_date
from worker.roi.snapshots import (
    BASELINE,
    SNAPSHOT_DAYS,
    STATUS_SUMS,
    SnapshotStatus,
    WindowKey,
    latest_statuses,
    load_snapshots,
    read_latest,
    read_status_sums,
    snapshot_status,
    status_totals,
)

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()


@pytest.fixture(scope="module")
def stored(database_url: str) -> Iterator[tuple[psycopg.Connection[Any], list[Run]]]:
    migrate(database_url, load_migrations())
    runs = history(NOW)
    with psycopg.connect(database_url, autocommit=True) as conn:
        store(conn, runs, NOW)
        yield conn, runs


def expected_latest(runs: list[Run], pattern_id: str, today: date = TODAY) -> str | None:
    """The latest status on `today` by the pure rule over windows summed here from the runs."""
    first = day0(runs, pattern_id)
    done = [n for n in SNAPSHOT_DAYS if first + timedelta(days=n) <= today]
    if not done:
        return None
    n = done[-1]
    baseline = totals_of_days(runs, pattern_id, first, first + timedelta(days=7))
    window = totals_of_days(
        runs, pattern_id, first + timedelta(days=n - 30), first + timedelta(days=n)
    )
    return snapshot_status(baseline, window).value


def test_latest_statuses_are_the_rule_over_the_stored_windows(
    stored: tuple[psycopg.Connection[Any], list[Run]],
) -> None:
    conn, runs = stored
    patterns = [*EXPECTED_LATEST, "never-seen"]
    with snapshot(conn) as cur:
        found = latest_statuses(cur, patterns, TODAY)
    assert {p: (s and s.value) for p, s in found.items()} == {**EXPECTED_LATEST, "never-seen": None}
    assert {p: expected_latest(runs, p) for p in EXPECTED_LATEST} == EXPECTED_LATEST
    with snapshot(conn) as cur:
        assert latest_statuses(cur, [], TODAY) == {}
        every = read_latest(cur, TODAY)
    assert {p: latest.status.value for p, latest in every.items()} == {
        p: s for p, s in EXPECTED_LATEST.items() if s is not None
    }
    assert every["steady"].day == 90
    assert every["slipping"].day == 60


@pytest.mark.parametrize("age", [29, 30, 31, 37, 38, 59, 60, 61, 67, 68, 89, 90, 91, 200])
def test_latest_statuses_on_every_day_around_each_snapshot(
    stored: tuple[psycopg.Connection[Any], list[Run]], age: int
) -> None:
    """Judged on the day each pattern is `age` days old: the windows read (the baseline within
    the day-30 window, then apart from it) sum exactly the runs of their days."""
    conn, runs = stored
    for pattern_id in EXPECTED_LATEST:
        first = day0(runs, pattern_id)
        today = first + timedelta(days=age)
        with snapshot(conn) as cur:
            found = latest_statuses(cur, [pattern_id], today)[pattern_id]
            sums = read_status_sums(cur, [pattern_id], today).get(pattern_id)
        assert (found and found.value) == expected_latest(runs, pattern_id, today), pattern_id
        latest = [n for n in SNAPSHOT_DAYS if n <= age]
        if not latest:
            assert sums is None
            continue
        n = latest[-1]
        baseline = totals_of_days(runs, pattern_id, first, first + timedelta(days=7))
        window = totals_of_days(
            runs, pattern_id, first + timedelta(days=n - 30), first + timedelta(days=n)
        )
        assert sums is not None
        columns = len(STATUS_SUMS)
        assert (status_totals(sums[:columns]), status_totals(sums[columns:])) == (
            status_totals(status_figures(baseline)),
            status_totals(status_figures(window)),
        ), (pattern_id, n)


def status_figures(totals: Totals) -> tuple[object, ...]:
    by_column = {
        "total_executions": totals.executions,
        "successful_executions": totals.successful_executions,
        "total_cost_saved_usd": totals.cost_saved_usd,
        "total_actual_cost_usd": totals.investment_usd,
    }
    return tuple(by_column[column] for column in STATUS_SUMS)


def test_a_window_without_a_daily_row_has_insufficient_data(
    stored: tuple[psycopg.Connection[Any], list[Run]],
) -> None:
    """A pattern whose latest window holds no stored day is judged on zero executions."""
    conn, _ = stored
    first = TODAY - timedelta(days=65)  # the day-60 window, days 30..59, holds nothing
    with conn.transaction(force_rollback=True):
        conn.execute(
            "INSERT INTO pattern_roi_summary (pattern_id, total_executions, "
            "successful_executions, total_cost_saved_usd, total_actual_cost_usd, "
            "first_executed_at, last_executed_at) VALUES ('gap', 20, 20, 90, 10, %s, %s)",
            (midnight(first), midnight(first)),
        )
        conn.execute(
            "INSERT INTO pattern_roi_daily (pattern_id, day, total_executions, "
            "successful_executions, total_cost_saved_usd, total_actual_cost_usd) "
            "VALUES ('gap', %s, 20, 20, %s, 10)",
            (first, Decimal(90)),
        )
        with conn.cursor() as cur:
            found = latest_statuses(cur, ["gap"], TODAY)
    assert found == {"gap": SnapshotStatus.INSUFFICIENT_DATA}


def test_latest_statuses_is_one_statement(
    stored: tuple[psycopg.Connection[Any], list[Run]],
) -> None:
    """It runs inside the worker's batch transaction: one round trip for any number."""
    conn, _ = stored
    CountingCursor.statements.clear()
    with conn.transaction(), CountingCursor(conn) as cur:
        latest_statuses(cur, list(EXPECTED_LATEST), TODAY)
    assert len(CountingCursor.statements) == 1


def test_every_window_sums_the_runs_of_its_days(
    stored: tuple[psycopg.Connection[Any], list[Run]],
) -> None:
    conn, runs = stored
    at = TODAY - timedelta(days=5)
    with snapshot(conn) as cur:
        found = load_snapshots(cur, TODAY, pattern_ids=list(EXPECTED_LATEST), at=at)
    assert set(found) == set(EXPECTED_LATEST)
    for pattern_id, snapshots in found.items():
        first = day0(runs, pattern_id)
        assert snapshots.day0 == first
        for shown in (snapshots.baseline, *snapshots.snapshots):
            expected_complete = shown.first_day + timedelta(days=shown.days) <= TODAY
            assert shown.complete is expected_complete, (pattern_id, shown.label)
            if shown.complete:
                expected = totals_of_days(
                    runs, pattern_id, shown.first_day, shown.last_day + timedelta(days=1)
                )
                assert shown.totals == expected, (pattern_id, shown.label)
    steady = found["steady"]
    assert [s.label for s in steady.snapshots] == ["day_30", "day_60", "day_90", "at"]
    assert steady.snapshots[-1].day == 95
    assert steady.snapshots[-1].previous_label == "day_90"
    losing = found["losing"]  # `at` is its day 30: the same window, summed once
    assert losing.snapshots[0].totals == losing.snapshots[1].totals
    assert [s.label for s in losing.snapshots][:2] == ["day_30", "at"]


def test_windows_read_only_the_rollups(
    stored: tuple[psycopg.Connection[Any], list[Run]],
) -> None:
    """Retention deletes raw executions and keeps their days: statuses do not change."""
    conn, _ = stored
    with conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM pattern_executions")
        with conn.cursor() as cur:
            found = latest_statuses(cur, list(EXPECTED_LATEST), TODAY)
    assert {p: (s and s.value) for p, s in found.items()} == EXPECTED_LATEST


def test_windows_follow_day_zero(stored: tuple[psycopg.Connection[Any], list[Run]]) -> None:
    conn, runs = stored
    with snapshot(conn) as cur:
        found = load_snapshots(cur, TODAY, pattern_ids=["young"])
    young = found["young"]
    assert young.latest is None
    assert young.baseline.complete
    assert young.baseline.totals == totals_of_days(
        runs, "young", day0(runs, "young"), day0(runs, "young") + timedelta(days=7)
    )
    assert all(not s.complete and s.status is None for s in young.snapshots)
    assert WindowKey(7, 7) == BASELINE


@pytest.mark.parametrize(
    "now",
    [
        NOW,
        midnight(TODAY),  # a span that ends at a midnight
        midnight(TODAY) + timedelta(hours=9),  # exactly at a run: it is not included
        midnight(TODAY.replace(day=1)) + timedelta(hours=9, minutes=7),
        midnight(TODAY.replace(day=1)),
        NOW - timedelta(days=40, hours=3, minutes=30),
        # Late in a day: the edges are read as the whole day minus what follows the cut, and
        # a run exactly at the cut (17:14) is outside the span.
        midnight(TODAY - timedelta(days=3)) + timedelta(hours=17, minutes=14),
        midnight(TODAY - timedelta(days=33)) + timedelta(hours=20),
    ],
)
def test_month_to_date_is_exact_to_the_instant(
    stored: tuple[psycopg.Connection[Any], list[Run]], now: datetime
) -> None:
    conn, runs = stored
    spans = month_spans(now)
    with snapshot(conn) as cur:
        figures = read_month_to_date(cur, now)
    current = totals_between(runs, None, spans.current.start, spans.current.end)
    previous = totals_between(runs, None, spans.previous.start, spans.previous.end)
    trailing = totals_between(runs, None, spans.trailing.start, spans.trailing.end)
    assert (figures.cost_saved_usd, figures.executions) == (
        current.cost_saved_usd,
        current.executions,
    )
    assert (figures.previous_cost_saved_usd, figures.previous_executions) == (
        previous.cost_saved_usd,
        previous.executions,
    )
    assert figures.trailing_cost_saved_usd == trailing.cost_saved_usd
    assert figures.spans == spans
