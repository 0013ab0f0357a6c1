"""The PostgreSQL panels of deploy/grafana/dashboards/ run on a freshly migrated database, read
only, and rank and rate patterns exactly as `roi-worker report` does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fixtures.services import Services, new_database
from worker.db.migrate import load_migrations, migrate
from worker.roi.analytics import load_analytics
from worker.roi.methodology import DEFAULT_MIN_EXECUTIONS, Window

DASHBOARDS = Path(__file__).parents[2] / "deploy" / "grafana" / "dashboards"
LIMIT = 10  # the LIMIT of the two tables

# pattern_id: (executions, successes, net cost saved, actual cost). Chosen to reach every rating
# rule and its boundaries, ties broken by cost saved and by pattern_id in code-point order
# ("B-tie" before "a-tie", unlike most locales), and more top performers than the table shows.
PATTERNS: dict[str, tuple[int, int, str, str]] = {
    "excellent": (100, 99, "1000", "100"),
    "exact-excellent": (20, 19, "200", "100"),  # 95 %, 200 %: excellent, on both boundaries
    "good": (20, 18, "150", "100"),
    "unbounded": (10, 10, "50", "0"),  # spent nothing and saved: above every ROI
    "exact-acceptable": (10, 7, "50", "100"),  # 70 %, 50 %
    "B-tie": (20, 20, "300", "100"),
    "a-tie": (20, 20, "300", "100"),
    **{f"filler-{n:02}": (30, 30, str(100 + 10 * n), "100") for n in range(1, 9)},
    "poor-unbounded": (10, 5, "40", "0"),  # saved without spending, but fails half the time
    "poor-low-roi": (20, 20, "20", "100"),
    "poor-nothing-saved": (20, 20, "0", "0"),
    "tie-less-saved": (20, 20, "10", "100"),  # 10 %, like the next, but less saved
    "tie-more-saved": (20, 20, "20", "200"),
    "failed": (20, 10, "-50", "100"),
    "failed-worse": (20, 15, "-80", "100"),
    "too-new": (5, 0, "-10", "10"),  # too few executions to be rated: in neither table
}


def sql_targets() -> list[tuple[str, str]]:
    """(panel title, SQL) of every PostgreSQL query of every dashboard."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            for target in panel.get("targets", []):
                if "rawSql" in target:
                    found.append((panel["title"], target["rawSql"]))
    return found


def as_grafana_sends(text: str, now: datetime) -> str:
    """The SQL with Grafana's time macros expanded the way its PostgreSQL data source does."""
    since = now - timedelta(days=7)
    return text.replace("$__timeFrom()", f"'{since:%Y-%m-%dT%H:%M:%SZ}'").replace(
        "$__timeTo()", f"'{now:%Y-%m-%dT%H:%M:%SZ}'"
    )


@pytest.fixture(scope="module")
def database(services: Services) -> Iterator[str]:
    """A migrated database holding the summaries of PATTERNS, today and the day before."""
    with new_database(services, "dashboards") as url:
        migrate(url, load_migrations())
        today = datetime.now(UTC).date()
        with psycopg.connect(url) as conn, conn.transaction():
            for pattern_id, (executions, successes, saved, spent) in PATTERNS.items():
                row = (pattern_id, executions, successes, Decimal(saved), Decimal(spent))
                conn.execute(
                    "INSERT INTO pattern_roi_summary (pattern_id, total_executions,"
                    " successful_executions, total_cost_saved_usd, total_actual_cost_usd)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    row,
                )
                for day in (today - timedelta(days=1), today):
                    conn.execute(
                        "INSERT INTO pattern_roi_daily (pattern_id, day, total_executions,"
                        " successful_executions, total_cost_saved_usd, total_actual_cost_usd)"
                        " VALUES (%s, %s, %s, %s, %s, %s)",
                        (pattern_id, day, *row[1:]),
                    )
        yield url


def run(url: str, text: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of one panel query, in a read-only transaction as the data source's
    role would (readonly-role.sql makes its sessions read-only)."""
    with psycopg.connect(url) as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(as_grafana_sends(text, datetime.now(UTC)).encode())
        assert cur.description is not None
        return [column.name for column in cur.description], cur.fetchall()


def panel_sql(title: str) -> str:
    (text,) = [sql for panel, sql in sql_targets() if panel == title]
    return text


@pytest.mark.parametrize(("title", "text"), sql_targets(), ids=[t for t, _ in sql_targets()])
def test_every_postgresql_panel_runs_read_only_and_finds_rows(
    database: str, title: str, text: str
) -> None:
    """The query names only relations and columns the migrations create, writes nothing, and
    returns rows for a database with executions."""
    _, rows = run(database, text)
    assert rows, f"{title}: no rows"


def test_daily_panel_is_a_time_series_over_the_dashboard_range(database: str) -> None:
    """One row per UTC day inside the range, with a `time` column, summed over the patterns."""
    columns, rows = run(database, panel_sql("Net cost saved per day"))
    assert columns[0] == "time"
    today = datetime.now(UTC).date()
    total = sum(Decimal(saved) for _, _, saved, _ in PATTERNS.values())
    assert [(row[0].astimezone(UTC).date(), row[1]) for row in rows] == [
        (today - timedelta(days=1), total),
        (today, total),
    ]


@pytest.mark.parametrize(
    ("title", "expected"),
    [("Top performers", "top_performers"), ("Underperformers", "underperformers")],
)
def test_rating_tables_match_the_report(database: str, title: str, expected: str) -> None:
    """Same patterns, order, ratings and ROI as `roi-worker report` with the default
    ROI_MIN_EXECUTIONS."""
    columns, rows = run(database, panel_sql(title))
    shown = [dict(zip(columns, row, strict=True)) for row in rows]
    with psycopg.connect(database) as conn:
        analytics = load_analytics(
            conn,
            Window(None, datetime.now(UTC).date()),
            DEFAULT_MIN_EXECUTIONS,
            datetime.now(UTC),
            percentiles=False,
        )
    report = getattr(analytics, expected)(LIMIT)
    assert len(report) >= 5
    if expected == "top_performers":
        assert len(analytics.top_performers(len(PATTERNS))) > LIMIT, "LIMIT is not exercised"
    assert [row["Pattern"] for row in shown] == [p.pattern_id for p in report]
    assert [row["Rating"] for row in shown] == [p.rating.value for p in report]
    for row, pattern in zip(shown, report, strict=True):
        assert row["Executions"] == pattern.totals.executions
        assert row["Net cost saved"] == pattern.totals.cost_saved_usd
        roi = pattern.totals.roi_percentage
        assert (row["ROI"] is None) == (roi is None), pattern.pattern_id
        if roi is not None:
            assert abs(row["ROI"] - roi) < Decimal("1e-9"), pattern.pattern_id
