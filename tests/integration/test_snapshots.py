"""Snapshots and month to date read from stored executions equal the pure rules applied to the
same executions in Python (worker.roi.snapshots, worker.roi.month_to_date)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import psycopg
import pytest

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
from worker.roi.month_to_date import month_spans, read_month_to_date
from worker.roi.snapshots import (
    BASELINE,
    SNAPSHOT_DAYS,
    WindowKey,
    latest_statuses,
    load_snapshots,
    read_latest,
    snapshot_status,
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


def expected_latest(runs: list[Run], pattern_id: str) -> str | None:
    """The latest status by the pure rule over windows summed here from the runs."""
    first = day0(runs, pattern_id)
    done = [n for n in SNAPSHOT_DAYS if first + timedelta(days=n) <= TODAY]
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


def test_latest_statuses_is_one_statement(
    stored: tuple[psycopg.Connection[Any], list[Run]],
) -> None:
    """It runs inside the worker's batch transaction: one round trip for any number."""
    conn, _ = stored
    with conn.transaction(), CountingCursor(conn) as cur:
        latest_statuses(cur, list(EXPECTED_LATEST), TODAY)
    assert len(cur.statements) == 1


class CountingCursor(psycopg.Cursor[Any]):
    """A cursor that keeps the statements it executes."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        super().__init__(conn)
        self.statements: list[Any] = []

    def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        self.statements.append(query)
        return super().execute(query, params, prepare=prepare, binary=binary)


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
