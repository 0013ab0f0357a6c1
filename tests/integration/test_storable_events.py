"""Every event the contract accepts is stored, exactly, by the real write path and database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import NOW, Accepted, accepted_events, example_document
from tests.worker_harness import (
    Stream,
    WorkerProcess,
    produce,
    query,
    read_topic,
    start,
    wait_caught_up,
)
from worker.consume.write import BatchWriter, ValidEvent, WriteResult
from worker.contract import json_codec
from worker.contract.event import ExecutionEvent
from worker.contract.validate import parse_event, validate
from worker.db.migrate import load_migrations, migrate
from worker.roi.summaries import find_drift
from worker.types import Source

# The documented rule (docs/event-contract.md), restated rather than imported, so that the test
# checks the code against the page.
JSONB_MAX_EXPONENT = 1000

_TABLES = "pattern_executions, pattern_roi_summary, pattern_roi_daily, consumer_offsets"
_STORED = """
SELECT executed_at, execution_time_seconds, estimated_time_seconds, actual_cost, estimated_cost,
       quality_score, actual_tokens, baseline_tokens, workflow_id, error_message, correlation_id,
       source, attributes::text, unknown_fields::text
FROM pattern_executions WHERE event_id = %s
"""


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    migrate(database_url, load_migrations())
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def wire(document: dict[str, Any]) -> bytes:
    return json_codec.dumps(document).encode()


def as_jsonb(value: Any) -> Any:
    """A free-form value as the jsonb column holds it: a number whose exponent is within the
    bound stays a number, any other becomes a string of its Decimal text."""
    if isinstance(value, dict):
        return {key: as_jsonb(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_jsonb(item) for item in value]
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        return value if abs(exponent) <= JSONB_MAX_EXPONENT else str(value)
    return value


def stored_json(text: str | None) -> Any:
    """jsonb text read back with exact numbers (psycopg's own loader makes floats)."""
    return None if text is None else json_codec.loads(text)


def write(conn: psycopg.Connection[Any], events: list[ExecutionEvent]) -> WriteResult:
    writer = BatchWriter(conn, "storable")
    items = [ValidEvent.of(event, Source("t", 0, offset)) for offset, event in enumerate(events)]
    return writer.write(items, {("t", 0): len(items)})


def assert_stored_as_accepted(conn: psycopg.Connection[Any], accepted: Accepted) -> None:
    """The row holds the event's instant, its exact amounts and its values as sent."""
    document = accepted.document
    row = conn.execute(_STORED, (uuid.UUID(document["event_id"]),)).fetchone()
    assert row is not None
    (executed_at, *amounts, quality, actual_tokens, baseline_tokens) = row[:8]
    texts, attributes, unknown = row[8:12], row[12], row[13]
    assert executed_at == accepted.instant
    names = ("execution_time_seconds", "estimated_time_seconds", "actual_cost", "estimated_cost")
    assert dict(zip(names, amounts, strict=True)) == accepted.money
    for name, stored in (("quality_score", quality), ("actual_tokens", actual_tokens)):
        sent = document.get(name)
        assert stored == (None if sent is None else Decimal(sent))
    sent_tokens = document.get("baseline_tokens")
    assert baseline_tokens == (None if sent_tokens is None else Decimal(sent_tokens))
    for name, stored in zip(
        ("workflow_id", "error_message", "correlation_id", "source"), texts, strict=True
    ):
        assert stored == document.get(name)
    assert stored_json(attributes) == as_jsonb(document.get("attributes"))
    sent_unknown = {k: v for k, v in document.items() if k not in ExecutionEvent.model_fields}
    assert stored_json(unknown) == (as_jsonb(sent_unknown) if sent_unknown else None)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(accepted_events(), min_size=1, max_size=3, unique_by=lambda a: a.document["event_id"])
)
def test_every_accepted_event_is_stored_exactly(
    conn: psycopg.Connection[Any], batch: list[Accepted]
) -> None:
    """An event the validator accepts (any offset, any bound, free-form values with extreme
    numbers and odd text) is inserted, at its instant, with every amount exact."""
    conn.execute(f"TRUNCATE {_TABLES}")
    events = [parse_event(wire(accepted.document), now=NOW) for accepted in batch]
    result = write(conn, events)
    assert [refused.message for refused in result.refused] == []
    assert len(result.inserted) == len(batch)
    for accepted in batch:
        assert_stored_as_accepted(conn, accepted)
    assert find_drift(conn) == []


# content_sha256 of these events as stored before executed_at was normalised to UTC (computed
# at 5f38363, whose model kept the producer's offset): a re-delivery must match them.
_STORED_BEFORE = [
    pytest.param(
        example_document(executed_at="2026-05-01T14:30:00.123456789+02:00"),
        "68f7fe4de7e8363b644b112e185a3f97bcafd6032bfc0f4271b700cd8833c556",
        id="+02:00",
    ),
    pytest.param(
        example_document(executed_at="2026-05-01T00:31:00-11:59"),
        "ea4b5825d7a007c12c9265355dcdf24a42e49d61afcaff442eff13f5c5e729bc",
        id="-11:59",
    ),
    pytest.param(
        example_document(
            executed_at="2026-05-01T14:30:00+02:00",
            attributes={
                "n": Decimal("1E+2"),
                "list": [Decimal("-0.0"), 10**100, "ü"],
                "s": "line\nbreak",
            },
            team="platform",
            big=-(10**99),
            tiny=Decimal("1E-16383"),
            frac=Decimal("0." + "1234567890" * 5),
        ),
        "9e2392c38a2edcc71b596a96dc46c2877b324b5b80e9db0bb68df3a0f252dcd4",
        id="free-form",
    ),
]


@pytest.mark.parametrize(("document", "stored_sha256"), _STORED_BEFORE)
def test_an_event_stored_before_utc_normalisation_is_still_a_duplicate(
    conn: psycopg.Connection[Any], document: dict[str, Any], stored_sha256: str
) -> None:
    """An event stored with its offset and the old fingerprint, delivered again now, is a
    duplicate, not a conflicting one; other content under its event_id is still a conflict."""
    conn.execute(f"TRUNCATE {_TABLES}")
    now_parsed = parse_event(wire(document), now=NOW)
    text: str = document["executed_at"]
    sign = -1 if text[-6] == "-" else 1
    offset = timezone(sign * timedelta(hours=int(text[-5:-3]), minutes=int(text[-2:])))
    as_before = now_parsed.model_copy(
        update={"executed_at": now_parsed.executed_at.astimezone(offset)}
    )
    writer = BatchWriter(conn, "before-and-after")
    first = writer.write(
        [ValidEvent(as_before, Source("t", 0, 0), bytes.fromhex(stored_sha256))], {}
    )
    assert len(first.inserted) == 1

    again = writer.write([ValidEvent.of(now_parsed, Source("t", 0, 1))], {})
    assert len(again.duplicates) == 1
    assert again.refused == []
    other = validate({**document, "success": False}, now=NOW)
    conflict = writer.write([ValidEvent.of(other, Source("t", 0, 2))], {})
    assert [refused.reason.value for refused in conflict.refused] == ["conflicting_duplicate"]


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("1e-99999", "string"),
        ("1e99999", "string"),
        ("1e-9999999", "string"),
        ("1e9999999", "string"),
        ("-0", "number"),
        ("-0.0", "number"),
        ("1e1000", "number"),
        ("1e1001", "string"),
        ("12.5e999", "number"),  # 125e998
        ("1e-1000", "number"),
        ("1.5e-1000", "string"),  # 15e-1001
        ("4.9406564584124654e-324", "number"),
        ("1.7976931348623157e308", "number"),
        ("9" * 4300, "number"),
        ("0." + "7" * 1000, "number"),
        ("0." + "7" * 1001, "string"),
        ("0e999999999999999999", "string"),
    ],
)
def test_free_form_numbers_are_stored_as_numbers_or_as_their_text(
    conn: psycopg.Connection[Any], number: str, kind: str
) -> None:
    """Numbers in unknown fields and attributes alike: within the exponent bound a jsonb number
    of the same value, beyond it a string of the same digits and exponent."""
    conn.execute(f"TRUNCATE {_TABLES}")
    raw = wire(example_document()).replace(
        b'"success"',
        b'"sample":' + number.encode() + b',"attributes":{"n":' + number.encode() + b'},"success"',
    )
    event = parse_event(raw, now=NOW)
    result = write(conn, [event])
    assert len(result.inserted) == 1, result.refused
    row = conn.execute(
        "SELECT jsonb_typeof(unknown_fields->'sample'), jsonb_typeof(attributes->'n'), "
        "unknown_fields::text, attributes::text FROM pattern_executions"
    ).fetchone()
    assert row is not None
    assert row[:2] == (kind, kind)
    sent = json_codec.loads(number)
    expected = sent if kind == "number" else str(sent)
    assert stored_json(row[2]) == {"sample": expected}
    assert stored_json(row[3]) == {"n": expected}


def test_the_worker_stores_what_postgresql_used_to_refuse(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Offsets beyond 15:59 and numbers beyond jsonb's range are stored end to end, and a
    number Decimal cannot read is dead-lettered as invalid_json instead of stopping the worker."""
    day = (datetime.now(UTC) - timedelta(days=3)).date()
    documents = [
        example_document(event_id=str(uuid.uuid4()), executed_at=f"{day}T12:30:00+16:00"),
        example_document(event_id=str(uuid.uuid4()), executed_at=f"{day}T12:30:00-23:59"),
        example_document(event_id=str(uuid.uuid4()), sample=Decimal("1E-99999")),
        example_document(event_id=str(uuid.uuid4()), attributes={"n": Decimal("1E+9999999")}),
        example_document(event_id=str(uuid.uuid4()), actual_cost=Decimal("0E+999999999999999999")),
    ]
    unreadable = wire(example_document(event_id=str(uuid.uuid4()))).replace(
        b'"success"', b'"sample":1e99999999999999999999,"success"'
    )
    messages = [(b"test-retry-automation", wire(document)) for document in documents]
    produce(stream.bootstrap_servers, stream.topic, [*messages, (b"x", unreadable)])
    worker = start(stream, workers, tmp_path)
    wait_caught_up(stream)

    rows = query(stream.database_url, "SELECT event_id, executed_at FROM pattern_executions")
    assert {str(event_id) for event_id, _ in rows} == {d["event_id"] for d in documents}
    instants = {str(event_id): executed_at for event_id, executed_at in rows}
    noon = datetime(day.year, day.month, day.day, 12, 30, tzinfo=UTC)
    assert instants[documents[0]["event_id"]] == noon - timedelta(hours=16)
    assert instants[documents[1]["event_id"]] == noon + timedelta(hours=23, minutes=59)
    [letter] = read_topic(stream.bootstrap_servers, stream.dlq_topic, expected=1)
    assert dict(letter.headers)["roi.error.reason"] == b"invalid_json"
    assert worker.stop() == 0
