"""Outcomes, quality and tokens against a real PostgreSQL: stored, counted per pattern and day,
archived by retention, and filled by migration 0008 from what older releases stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.fixtures.services import Services, new_database
from tests.strategies import NOW, example_document
from worker.consume.write import BatchWriter, ValidEvent
from worker.contract import json_codec
from worker.contract.event import ExecutionEvent
from worker.contract.validate import validate
from worker.db.migrate import load_migrations, migrate
from worker.ops.retention import apply_retention
from worker.roi.analytics import load_analytics, totals_from_row
from worker.roi.methodology import Totals, Trend, Window
from worker.roi.summaries import COST_SAVED, DAY, SUMS, TIME_SAVED, find_drift
from worker.types import Source

DAY_ONE = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
DAY_TWO = DAY_ONE + timedelta(days=1)


@pytest.fixture
def url(services: Services) -> Iterator[str]:
    with new_database(services, "outcomes") as database:
        yield database


def event(executed_at: datetime, **changes: Any) -> ExecutionEvent:
    document = example_document(
        event_id=str(uuid.uuid4()), pattern_id="p", executed_at=executed_at.isoformat()
    )
    return validate({**document, **changes}, now=NOW)


def events() -> list[ExecutionEvent]:
    """Day one: 10 runs scored 0.4, 8 of them succeed (one partially), 2 fail (one an error);
    day two: 11 runs scored 0.95, all succeed. Tokens on 3 runs, the last one a loss."""
    day_one = [
        event(DAY_ONE + timedelta(minutes=i), quality_score=Decimal("0.4")) for i in range(7)
    ]
    day_one += [
        event(DAY_ONE, success=True, outcome="partial_success", quality_score=Decimal("0.4")),
        event(DAY_ONE, success=False, quality_score=Decimal("0.4")),
        event(DAY_ONE, success=False, outcome="error", quality_score=Decimal("0.4")),
    ]
    day_two = [event(DAY_TWO, quality_score=Decimal("0.95")) for _ in range(11)]
    tokens = [
        event(DAY_TWO, actual_tokens=200, baseline_tokens=1000),
        event(DAY_TWO, actual_tokens=100, baseline_tokens=150, outcome="success"),
        event(DAY_TWO, actual_tokens=900, baseline_tokens=600),
        event(DAY_TWO, actual_tokens=50),  # only one count: not measured
    ]
    return day_one + day_two + tokens


def write(conn: psycopg.Connection[Any], batch: list[ExecutionEvent], first: int = 0) -> Any:
    items = [ValidEvent.of(e, Source("t", 0, first + i)) for i, e in enumerate(batch)]
    return BatchWriter(conn, "outcomes").write(items, {("t", 0): first + len(batch)})


def totals_of(batch: list[ExecutionEvent]) -> Totals:
    return sum(
        (
            Totals.of_execution(
                success=e.success,
                execution_time_seconds=e.execution_time_seconds,
                estimated_time_seconds=e.estimated_time_seconds,
                actual_cost=e.actual_cost,
                estimated_cost=e.estimated_cost,
                outcome=e.outcome,
                quality_score=e.quality_score,
                actual_tokens=e.actual_tokens,
                baseline_tokens=e.baseline_tokens,
            )
            for e in batch
        ),
        Totals(),
    )


def summary(conn: psycopg.Connection[Any], table: str = "pattern_roi_summary") -> Totals:
    row = conn.execute(
        f"SELECT {', '.join(f'sum({c})' for c in SUMS)} FROM {table} WHERE pattern_id = 'p'"
    ).fetchone()
    assert row is not None
    return totals_from_row(row)


def test_the_write_path_stores_each_outcome_and_counts_quality_and_tokens(url: str) -> None:
    """Each row keeps its resolved outcome; summary and daily rows add up outcomes, quality
    and tokens as the methodology does; verify finds no drift; the report's analytics show the
    quality mean and its rising trend."""
    migrate(url, load_migrations())
    batch = events()
    with psycopg.connect(url, autocommit=True) as conn:
        result = write(conn, batch)
        assert len(result.inserted) == len(batch)
        stored: dict[uuid.UUID, str] = dict(
            conn.execute("SELECT event_id, outcome FROM pattern_executions").fetchall()
        )
        assert stored == {e.event_id: e.resolved_outcome for e in batch}

        expected = totals_of(batch)
        assert summary(conn) == expected == summary(conn, "pattern_roi_daily")
        assert expected.executions_by_outcome == {
            "success": 22,
            "failure": 1,
            "partial_success": 1,
            "error": 1,
        }
        assert expected.quality_scored_executions == 21
        assert expected.quality_score_sum == Decimal("14.45")  # 10 * 0.4 + 11 * 0.95
        assert (expected.token_measured_executions, expected.tokens_saved) == (3, 550)
        assert find_drift(conn) == []

        analytics = load_analytics(
            conn, Window.parse(None, date(2026, 5, 20)), 10, datetime.now(UTC)
        )
        pattern = analytics.patterns[0]
        assert pattern.totals == expected
        assert pattern.quality_trend is Trend.INCREASING  # 0.4 -> 0.95, beyond its margin
        assert pattern.quality_change is not None
        assert pattern.quality_change.change == Decimal("0.55")


def test_retention_archives_outcomes_quality_and_tokens(url: str) -> None:
    """The executions retention deletes leave their outcome counts, quality sums and tokens in
    pattern_roi_archive: the summaries still equal the recompute."""
    migrate(url, load_migrations())
    batch = events()
    with psycopg.connect(url, autocommit=True) as conn:
        write(conn, batch)
        before = summary(conn)
        result = apply_retention(conn, DAY_TWO.replace(hour=0))
        assert result.deleted == 10
        archived = summary(conn, "pattern_roi_archive")
        assert archived == totals_of([e for e in batch if e.executed_at < DAY_TWO.replace(hour=0)])
        assert archived.executions_by_outcome == {
            "success": 7,
            "failure": 1,
            "partial_success": 1,
            "error": 1,
        }
        assert (archived.quality_scored_executions, archived.quality_score_sum) == (
            10,
            Decimal("4.0"),
        )
        assert summary(conn) == before
        assert find_drift(conn) == []


# --------------------------------------------------------------------------- migration 0008

_V7_COLUMNS = (
    "event_id, schema_version, pattern_id, executed_at, success, execution_time_seconds, "
    "estimated_time_seconds, actual_cost, estimated_cost, quality_score, actual_tokens, "
    "baseline_tokens, unknown_fields, content_sha256, source_topic, source_partition, "
    "source_offset"
)
# The summary columns before 0008, and how the previous release filled them (summaries.py).
_V7_SUMS = (
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
)
_V7_PARTIALS = f"""
SELECT pattern_id, day, {", ".join(f"{SUMS[c]} AS {c}" for c in _V7_SUMS)},
       min(executed_at) AS first_executed_at, max(executed_at) AS last_executed_at
FROM (SELECT *, {DAY} AS day, {TIME_SAVED} AS time_saved, {COST_SAVED} AS cost_saved
      FROM pattern_executions) AS e
GROUP BY 1, 2
UNION ALL
SELECT pattern_id, day, {", ".join(_V7_SUMS)}, first_executed_at, last_executed_at
FROM pattern_roi_archive
"""
_V7_SUMMARIES = f"""
INSERT INTO pattern_roi_daily (pattern_id, day, {", ".join(_V7_SUMS)})
SELECT pattern_id, day, {", ".join(f"sum({c})" for c in _V7_SUMS)}
FROM ({_V7_PARTIALS}) AS p GROUP BY 1, 2;
INSERT INTO pattern_roi_summary (pattern_id, {", ".join(_V7_SUMS)}, first_executed_at,
                                 last_executed_at)
SELECT pattern_id, {", ".join(f"sum({c})" for c in _V7_SUMS)}, min(first_executed_at),
       max(last_executed_at)
FROM ({_V7_PARTIALS}) AS p GROUP BY 1
"""


def store_as_release_7(conn: psycopg.Connection[Any], events: list[ExecutionEvent]) -> None:
    """The rows the previous release stored: no outcome column, the `outcome` a producer sent
    kept among the unknown fields, and the fingerprint (unchanged by 0008) of the whole event."""
    for offset, e in enumerate(events):
        document = e.to_document()
        unknown = {k: v for k, v in document.items() if k not in ExecutionEvent.model_fields}
        if "outcome" in e.model_fields_set:
            unknown = {"outcome": document["outcome"], **unknown}
        conn.execute(
            f"INSERT INTO pattern_executions ({_V7_COLUMNS}) "
            "VALUES (%s, 1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 't', 0, %s)",
            (
                e.event_id,
                e.pattern_id,
                e.executed_at,
                e.success,
                e.execution_time_seconds,
                e.estimated_time_seconds,
                e.actual_cost,
                e.estimated_cost,
                e.quality_score,
                e.actual_tokens,
                e.baseline_tokens,
                json_codec.dumps_jsonb(unknown) if unknown else None,
                e.fingerprint(),
                offset,
            ),
        )


def test_migration_0008_fills_outcomes_and_aggregates_from_an_older_schema(url: str) -> None:
    """Rows stored before 0008 get their outcome: the unknown-field `outcome` when it is valid
    and agrees with success (then it leaves unknown_fields), else derived from success; archived
    days count successes as success and the rest as failure; every new summary column equals
    the recompute; and an event stored then is a duplicate when it is delivered again."""
    migrate(url, tuple(m for m in load_migrations() if m.version <= 7))
    honoured = event(DAY_ONE, outcome="partial_success", team="platform")
    error = event(DAY_ONE, success=False, outcome="error")
    contradicting = {"outcome": "error"}  # with success=true: not honoured, kept as sent
    unknown_value = {"outcome": "crashed"}
    rows = [
        honoured,
        error,
        event(DAY_ONE, quality_score=Decimal("0.8"), actual_tokens=100, baseline_tokens=400),
        event(DAY_TWO, success=False),
        event(DAY_TWO, outcome=None),
    ]
    unread = {uuid.uuid4(): (True, contradicting), uuid.uuid4(): (False, unknown_value)}
    with psycopg.connect(url, autocommit=True) as conn:
        store_as_release_7(conn, rows)
        # Two more as the previous release stored them, which this one refuses to read.
        for offset, (event_id, (success, unknown)) in enumerate(unread.items(), start=len(rows)):
            conn.execute(
                f"INSERT INTO pattern_executions ({_V7_COLUMNS}) VALUES (%s, 1, 'p', %s, %s,"
                " 1, 2, 0.10, 1.00, NULL, NULL, NULL, %s, NULL, 't', 0, %s)",
                (event_id, DAY_TWO, success, json_codec.dumps_jsonb(unknown), offset),
            )
        conn.execute(
            "INSERT INTO pattern_roi_archive (pattern_id, day, total_executions,"
            " successful_executions, total_time_saved_seconds, total_cost_saved_usd,"
            " total_actual_cost_usd, total_estimated_cost_usd, total_execution_time_seconds,"
            " total_estimated_time_seconds, negative_savings_executions, cost_anomaly_executions,"
            " first_executed_at, last_executed_at) VALUES"
            " ('p', '2026-04-01', 3, 2, 10, 1.00, 0.30, 2.00, 5, 15, 0, 0,"
            " '2026-04-01T01:00:00Z', '2026-04-01T02:00:00Z')"
        )
        conn.execute(_V7_SUMMARIES)

        migrate(url, load_migrations())

        stored = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                "SELECT event_id, outcome, unknown_fields FROM pattern_executions"
            )
        }
        assert stored[honoured.event_id] == ("partial_success", {"team": "platform"})
        assert stored[error.event_id] == ("error", None)
        assert stored[rows[2].event_id] == ("success", None)
        assert stored[rows[3].event_id] == ("failure", None)
        assert stored[rows[4].event_id] == ("success", {"outcome": None})
        assert [stored[event_id] for event_id in unread] == [
            ("success", contradicting),
            ("failure", unknown_value),
        ]
        archive = conn.execute(
            "SELECT outcome_success_executions, outcome_failure_executions,"
            " outcome_partial_success_executions, outcome_error_executions,"
            " quality_scored_executions, total_quality_score, token_measured_executions,"
            " total_tokens_saved FROM pattern_roi_archive"
        ).fetchall()
        assert archive == [(2, 1, 0, 0, 0, 0, 0, 0)]

        assert find_drift(conn) == []
        totals = summary(conn)
        assert totals.executions == 10
        assert totals.executions_by_outcome == {
            "success": 2 + 3,  # archived, then rows[2], rows[4] and the contradicting one
            "failure": 1 + 2,  # archived, then rows[3] and the unknown value
            "partial_success": 1,
            "error": 1,
        }
        assert (totals.quality_scored_executions, totals.quality_score_sum) == (1, Decimal("0.8"))
        assert (totals.token_measured_executions, totals.tokens_saved) == (1, 300)

        # Delivered again after the change, an event stored before it is the same content.
        again = write(conn, [honoured, error, rows[4]], first=100)
        assert (len(again.inserted), len(again.duplicates), again.refused) == (0, 3, [])


def test_a_row_written_without_an_outcome_gets_it_from_success(url: str) -> None:
    """A writer that does not know the column (a previous release during a rolling update, a
    hand-written INSERT) stores success or failure by `success`, as the contract derives it."""
    migrate(url, load_migrations())
    with psycopg.connect(url, autocommit=True) as conn:
        for offset, success in enumerate((True, False)):
            conn.execute(
                "INSERT INTO pattern_executions (event_id, schema_version, pattern_id,"
                " executed_at, success, execution_time_seconds, estimated_time_seconds,"
                " actual_cost, estimated_cost, source_topic, source_partition, source_offset)"
                " VALUES (%s, 1, 'p', now(), %s, 1, 2, 0, 1, 't', 0, %s)",
                (uuid.uuid4(), success, offset),
            )
        outcomes = conn.execute(
            "SELECT success, outcome FROM pattern_executions ORDER BY success DESC"
        ).fetchall()
    assert outcomes == [(True, "success"), (False, "failure")]
