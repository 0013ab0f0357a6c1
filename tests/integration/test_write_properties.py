"""Property: however events are batched, ordered and repeated, summaries equal a recompute."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import NOW, example_document, valid_documents
from worker.consume.write import BatchWriter, ValidEvent
from worker.contract.validate import validate
from worker.db.migrate import load_migrations, migrate
from worker.roi.analytics import totals_from_row
from worker.roi.methodology import Totals
from worker.roi.summaries import SUMS, find_drift
from worker.types import Source

PATTERNS = ("alpha", "beta", "gamma/delta")


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    migrate(database_url, load_migrations())
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Distinct events, and batches of indexes into them: every event at least once, some
    repeated, in any order, cut into batches at random points."""
    documents = draw(
        st.lists(valid_documents(), min_size=1, max_size=25, unique_by=lambda d: d["event_id"])
    )
    for document in documents:
        document["pattern_id"] = draw(st.sampled_from(PATTERNS))
    indexes = list(range(len(documents)))
    repeats = draw(st.lists(st.sampled_from(indexes), max_size=10))
    sequence = draw(st.permutations(indexes + repeats))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(sequence) - 1)), max_size=6)))
    bounds = [0, *(c for c in cuts if c < len(sequence)), len(sequence)]
    batches = [sequence[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return documents, batches


def expected(documents: list[dict[str, Any]]) -> dict[str, Totals]:
    """worker.roi.methodology over distinct events, to compare with the SQL to the cent."""
    totals: dict[str, Totals] = {}
    for document in documents:
        event = validate(document, now=NOW)
        run = Totals.of_execution(
            success=event.success,
            execution_time_seconds=event.execution_time_seconds,
            estimated_time_seconds=event.estimated_time_seconds,
            actual_cost=event.actual_cost,
            estimated_cost=event.estimated_cost,
            outcome=event.outcome,
            quality_score=event.quality_score,
            actual_tokens=event.actual_tokens,
            baseline_tokens=event.baseline_tokens,
        )
        totals[event.pattern_id] = totals.get(event.pattern_id, Totals()) + run
    return totals


@settings(max_examples=60)
@given(deliveries())
def test_incremental_summaries_equal_the_recompute(
    conn: psycopg.Connection[Any], delivery: tuple[list[dict[str, Any]], list[list[int]]]
) -> None:
    """Every summary column, flags, outcomes, quality and tokens included, equals the
    methodology's rules applied in Python."""
    documents, batches = delivery
    conn.execute(
        "TRUNCATE pattern_executions, pattern_roi_summary, pattern_roi_daily, consumer_offsets"
    )
    events = [validate(document, now=NOW) for document in documents]
    writer = BatchWriter(conn, "property")
    offset = 0
    inserted = 0
    for batch in batches:
        items = []
        for index in batch:
            items.append(ValidEvent.of(events[index], Source("t", 0, offset)))
            offset += 1
        result = writer.write(items, {("t", 0): offset})
        inserted += len(result.inserted)
        assert not result.refused
        assert len(result.inserted) + len(result.duplicates) == len(batch)

    assert inserted == len(documents)
    assert find_drift(conn) == []
    rows = conn.execute(f"SELECT pattern_id, {', '.join(SUMS)} FROM pattern_roi_summary").fetchall()
    assert {row[0]: totals_from_row(row[1:]) for row in rows} == expected(documents)
    stored = dict(conn.execute("SELECT event_id, outcome FROM pattern_executions").fetchall())
    assert stored == {event.event_id: event.resolved_outcome for event in events}
    assert conn.execute("SELECT next_offset FROM consumer_offsets").fetchall() == [(offset,)]


def test_a_constraint_added_after_staging_still_isolates_the_row(
    conn: psycopg.Connection[Any],
) -> None:
    """The staging table copies the constraints it found when the session made it; a rule
    added later is caught by pattern_executions, and the slow path isolates the row."""
    conn.execute(
        "TRUNCATE pattern_executions, pattern_roi_summary, pattern_roi_daily, consumer_offsets"
    )
    writer = BatchWriter(conn, "late-constraint")
    documents = [
        dict(example_document(), event_id=str(uuid.uuid4()), workflow_id=f"wf-{i}")
        for i in range(9)
    ]
    events = [validate(document, now=NOW) for document in documents]
    writer.write([ValidEvent.of(events[0], Source("t", 0, 0))], {})  # creates the staging
    conn.execute("ALTER TABLE pattern_executions ADD CONSTRAINT late CHECK (workflow_id <> 'wf-5')")
    try:
        result = writer.write(
            [ValidEvent.of(e, Source("t", 0, i)) for i, e in enumerate(events[1:], 1)],
            {("t", 0): 9},
        )
    finally:
        conn.execute("ALTER TABLE pattern_executions DROP CONSTRAINT late")
    assert [r.item.event.workflow_id for r in result.refused] == ["wf-5"]
    assert "late" in result.refused[0].message
    assert len(result.inserted) == 7
    assert find_drift(conn) == []


def test_a_constraint_dropped_after_staging_no_longer_refuses(database_url: str) -> None:
    """A rule an operator relaxed (the fix before a redrive) stops refusing rows at once, even
    on a session whose staging table still carries it."""
    with psycopg.connect(database_url, autocommit=True) as session:
        session.execute(
            "ALTER TABLE pattern_executions ADD CONSTRAINT strict CHECK (workflow_id <> 'wf-5')"
        )
        writer = BatchWriter(session, "relaxed-constraint")
        documents = [
            dict(example_document(), event_id=str(uuid.uuid4()), workflow_id=f"wf-{i}")
            for i in (1, 5)
        ]
        events = [validate(document, now=NOW) for document in documents]
        try:
            first = writer.write([ValidEvent.of(events[0], Source("t", 0, 0))], {})
            refused = writer.write([ValidEvent.of(events[1], Source("t", 0, 1))], {})
        finally:
            session.execute("ALTER TABLE pattern_executions DROP CONSTRAINT strict")
        stored = writer.write([ValidEvent.of(events[1], Source("t", 0, 2))], {})
        assert len(first.inserted) == 1
        assert [r.item.event.workflow_id for r in refused.refused] == ["wf-5"]
        assert [i.event.workflow_id for i in stored.inserted] == ["wf-5"]
        assert find_drift(session) == []


def test_every_copy_of_an_event_older_than_the_horizon_is_expired(
    conn: psycopg.Connection[Any],
) -> None:
    """Retention's horizon expires an old event and its repeats in the same batch alike; a
    recent event in that batch is stored."""
    conn.execute(
        "TRUNCATE pattern_executions, pattern_roi_summary, pattern_roi_daily, consumer_offsets, "
        "retention_horizon"
    )
    old, recent = (
        validate(dict(example_document(), event_id=str(uuid.uuid4())), now=NOW) for _ in range(2)
    )
    conn.execute("INSERT INTO retention_horizon (horizon) VALUES (%s)", (old.executed_at,))
    old = old.model_copy(update={"executed_at": old.executed_at - timedelta(days=1)})
    writer = BatchWriter(conn, "horizon")
    items = [ValidEvent.of(e, Source("t", 0, i)) for i, e in enumerate((old, old, recent))]
    try:
        for result in (writer.preview(items), writer.write(items, {("t", 0): 3})):
            assert [i.source.offset for i in result.expired] == [0, 1]
            assert [i.source.offset for i in result.inserted] == [2]
            assert result.duplicates == []
    finally:
        conn.execute("TRUNCATE retention_horizon")
