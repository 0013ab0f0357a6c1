"""The write stage's COPY, with its columns' types declared: the types are the table's, every
accepted event stores exactly what psycopg's choice of dumper by Python type stored, and a row
the database refuses is still isolated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import NOW, Accepted, accepted_events, example_document
from worker.consume.write import (
    COLUMN_TYPES,
    COLUMNS,
    STAGING_TABLE,
    BatchWriter,
    ValidEvent,
)
from worker.contract import json_codec
from worker.contract.validate import parse_event, validate
from worker.db.migrate import load_migrations, migrate
from worker.types import Source

_TABLES = "pattern_executions, pattern_roi_summary, pattern_roi_daily, consumer_offsets"
_COLUMN_LIST = ", ".join(COLUMNS)
_REFERENCE = "copy_by_python_types"


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    migrate(database_url, load_migrations())
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def test_declared_types_are_those_of_pattern_executions(conn: psycopg.Connection[Any]) -> None:
    """COLUMN_TYPES names the type the migrations gave each column COPY fills."""
    found = dict(
        conn.execute(
            "SELECT attname, atttypid::regtype::text FROM pg_attribute "
            "WHERE attrelid = 'pattern_executions'::regclass AND attnum > 0 AND NOT attisdropped"
        ).fetchall()
    )
    declared = {
        column: conn.execute("SELECT %s::regtype::text", (name,)).fetchone()[0]  # type: ignore[index]
        for column, name in COLUMN_TYPES.items()
    }
    assert declared == {column: found.get(column) for column in COLUMN_TYPES}


def reference_rows(conn: psycopg.Connection[Any], items: list[ValidEvent]) -> list[tuple[str]]:
    """The rows as COPY stored them before the types were declared: each value dumped by its
    Python type, from the model's public properties."""
    conn.execute(f"DROP TABLE IF EXISTS {_REFERENCE}")
    conn.execute(f"CREATE TEMP TABLE {_REFERENCE} (LIKE pattern_executions INCLUDING DEFAULTS)")
    with conn.cursor() as cur, cur.copy(f"COPY {_REFERENCE} ({_COLUMN_LIST}) FROM STDIN") as copy:
        for item in items:
            event, unknown = item.event, item.event.unknown_fields
            attributes = event.attributes
            values = {
                **{name: getattr(event, name) for name in COLUMNS if hasattr(event, name)},
                "outcome": event.resolved_outcome,
                "attributes": None if attributes is None else json_codec.dumps_jsonb(attributes),
                "unknown_fields": json_codec.dumps_jsonb(unknown) if unknown else None,
                "content_sha256": item.fingerprint,
                "source_topic": item.source.topic,
                "source_partition": item.source.partition,
                "source_offset": item.source.offset,
            }
            copy.write_row([values[name] for name in COLUMNS])
    return conn.execute(
        f"SELECT ({_COLUMN_LIST})::text FROM {_REFERENCE} ORDER BY event_id"
    ).fetchall()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(accepted_events(), min_size=1, max_size=5, unique_by=lambda a: a.document["event_id"])
)
def test_every_accepted_event_stores_as_copy_by_python_types_did(
    conn: psycopg.Connection[Any], batch: list[Accepted]
) -> None:
    """Any accepted events (every offset, bound, extreme number, odd text, attributes and
    unknown fields) store, column for column, the text the COPY without declared types
    stored."""
    conn.execute(f"TRUNCATE {_TABLES}")
    items = [
        ValidEvent.of(
            parse_event(json_codec.dumps(accepted.document).encode(), now=NOW),
            Source("t", 0, offset),
        )
        for offset, accepted in enumerate(batch)
    ]
    result = BatchWriter(conn, "copy-types").write(items, {("t", 0): len(items)})
    assert len(result.inserted) == len(items)
    stored = conn.execute(
        f"SELECT ({_COLUMN_LIST})::text FROM pattern_executions ORDER BY event_id"
    ).fetchall()
    assert stored == reference_rows(conn, items)


def test_a_refused_row_in_a_batch_is_isolated(database_url: str) -> None:
    """A row the staging table's constraints refuse is split out of the COPY alone; the rest of
    the batch is stored."""
    with psycopg.connect(database_url, autocommit=True) as session:
        session.execute(f"TRUNCATE {_TABLES}")
        session.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
        session.execute(
            "ALTER TABLE pattern_executions ADD CONSTRAINT strict CHECK (workflow_id <> 'wf-5')"
        )
        documents = [
            dict(example_document(), event_id=str(uuid.uuid4()), workflow_id=f"wf-{i}")
            for i in range(9)
        ]
        items = [
            ValidEvent.of(validate(document, now=NOW), Source("t", 0, offset))
            for offset, document in enumerate(documents)
        ]
        try:
            result = BatchWriter(session, "refused-in-copy").write(items, {("t", 0): 9})
        finally:
            session.execute("ALTER TABLE pattern_executions DROP CONSTRAINT strict")
        assert [r.item.event.workflow_id for r in result.refused] == ["wf-5"]
        assert "strict" in result.refused[0].message
        assert len(result.inserted) == 8
