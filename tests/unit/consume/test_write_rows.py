"""The COPY row of an event (worker.consume.write._row) holds, column by column, what the event
model says is stored."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import NOW, Accepted, accepted_events, example_document
from worker.consume.write import COLUMN_TYPES, COLUMNS, ValidEvent, _row
from worker.contract import json_codec
from worker.contract.validate import parse_event
from worker.types import Source

SOURCE = Source("topic", 3, 1234)


def stored_value(item: ValidEvent, column: str) -> Any:
    """What pattern_executions stores in `column`, read through the model's public names."""
    event = item.event
    if column == "outcome":
        return event.resolved_outcome
    if column == "attributes":
        return None if event.attributes is None else json_codec.dumps_jsonb(event.attributes)
    if column == "unknown_fields":
        unknown = event.unknown_fields
        return json_codec.dumps_jsonb(unknown) if unknown else None
    if column == "content_sha256":
        return item.fingerprint
    if column.startswith("source_"):
        return getattr(item.source, column.removeprefix("source_"))
    return getattr(event, column)


def item_of(document: dict[str, Any]) -> ValidEvent:
    event = parse_event(json_codec.dumps(document).encode(), now=NOW)
    return ValidEvent.of(event, SOURCE)


@given(accepted_events())
def test_every_column_holds_what_the_model_stores(accepted: Accepted) -> None:
    """Any accepted event (an outcome or none, attributes and unknown fields or none) gives a
    row whose every value is the model's for that column, in COLUMNS' order."""
    item = item_of(accepted.document)
    assert _row(item) == tuple(stored_value(item, column) for column in COLUMNS)


@given(st.sampled_from([True, False]), st.sampled_from([None, "partial_success"]))
def test_the_outcome_is_stored_resolved(success: bool, outcome: str | None) -> None:
    """Without an outcome the row stores the one `success` implies; with one, that one."""
    document = example_document(success=success)
    if outcome is not None:
        document["outcome"] = outcome
    row = _row(item_of(document))
    expected = outcome or ("success" if success else "failure")
    assert row[COLUMNS.index("outcome")] == expected


def test_every_column_has_a_type() -> None:
    """COPY declares a type for each column it fills, and for no other."""
    assert set(COLUMN_TYPES) == set(COLUMNS)
