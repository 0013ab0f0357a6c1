"""The published JSON Schema: in sync with the model, and agreeing with it on real documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from jsonschema import Draft202012Validator

from tests.strategies import NOW, Accepted, accepted_events, example_document, valid_documents
from worker import schemas
from worker.contract import json_codec
from worker.contract.validate import parse_event
from worker.errors import InvalidEventError

SCHEMAS_DIR = Path(__file__).parents[2] / "schemas"
VALIDATOR = Draft202012Validator(schemas.execution_event_schema())


def as_other_languages_see_it(document: dict[str, Any]) -> Any:
    """The document after a round trip through a plain JSON parser (numbers as floats)."""
    return json.loads(json_codec.dumps(document))


@pytest.mark.parametrize("name", sorted(schemas.published()))
def test_checked_in_schema_matches_the_model(name: str) -> None:
    """schemas/ holds exactly what the model generates; run `make schemas` after changing it."""
    checked_in = (SCHEMAS_DIR / name).read_text(encoding="utf-8")
    assert checked_in == schemas.published()[name], f"schemas/{name} is stale: run make schemas"


def test_schema_is_valid_draft_2020_12() -> None:
    """Other languages' validators can load the schema."""
    Draft202012Validator.check_schema(schemas.execution_event_schema())


@given(valid_documents())
def test_schema_accepts_every_valid_event(document: dict[str, Any]) -> None:
    """A producer validating with the schema never rejects an event the worker accepts."""
    errors = list(VALIDATOR.iter_errors(as_other_languages_see_it(document)))
    assert not errors, [error.message for error in errors]


@given(accepted_events())
def test_schema_accepts_every_event_the_contract_accepts(accepted: Accepted) -> None:
    """Extreme values, odd spellings and free-form fields too: the schema is never stricter
    than the worker."""
    errors = list(VALIDATOR.iter_errors(as_other_languages_see_it(accepted.document)))
    assert not errors, [error.message for error in errors]


def worker_accepts(text: str) -> bool:
    try:
        parse_event(text.encode(), now=NOW)
    except InvalidEventError:
        return False
    return True


@pytest.mark.parametrize(
    "changes",
    [
        {"executed_at": "2024-02-29T00:00:00Z"},
        {"executed_at": "2025-02-29T00:00:00Z"},
        {"executed_at": "2100-02-29T00:00:00Z"},
        {"executed_at": "2026-04-31T00:00:00Z"},
        {"executed_at": "2026-04-30T23:59:59.123456789-23:59"},
        {"executed_at": "2026-05-01 12:30:00z"},
        {"executed_at": "2026-05-01T24:00:00Z"},
        {"executed_at": "2026-05-01T23:59:60Z"},
        {"executed_at": "2026-05-01T12:30:00+24:00"},
        {"executed_at": "2026-05-01T12:30:00.1234567890Z"},
        {"executed_at": "1999-12-31T23:30:00-01:00"},
        {"executed_at": "1998-12-31T23:59:59-23:59"},
        {"actual_cost": "1000000000"},
        {"actual_cost": "0001000000000.000"},
        {"actual_cost": "1000000000.01"},
        {"actual_cost": "999999999.99"},
        {"actual_cost": "10000000000"},
        {"actual_cost": "1." + "0" * 40},
        {"actual_cost": "1." + "0" * 41},
        {"actual_cost": "0." + "0" * 39 + "1"},
        {"actual_cost": "1.5e3"},
        {"workflow_id": "wf\x00"},
        {"error_message": "\x00"},
        {"error_message": "\\u0000"},  # the six characters, not NUL
        {"attributes": {"k": "\x00"}},
        {"attributes": {"\x00": 1}},
        {"attributes": {"a": [{"b": ["\x00"]}]}},
        {"attributes": {"a": [{"b": [None, 1.5, True, "ok"]}]}},
        {"team": "\x00"},
        {"team\x00": 1},
        {"team": {"a": ["\x00"]}},
        {"team": {"a": [1, "b", None]}},
        *(
            {"success": success, "outcome": outcome}
            for success in (True, False)
            for outcome in ("success", "failure", "partial_success", "error", None, "other")
        ),
    ],
)
def test_schema_and_worker_agree_at_the_edges(changes: dict[str, Any]) -> None:
    """Calendar days, money strings at their caps and places, NUL in any string or key, the
    outcome's agreement with success: what the schema states is exactly what the worker
    checks."""
    text = json.dumps(example_document(**changes), default=float)  # NUL as the escape \u0000
    assert VALIDATOR.is_valid(json.loads(text)) == worker_accepts(text)


@pytest.mark.parametrize(
    "changes",
    [
        {"event_id": ...},
        {"schema_version": 2},
        {"event_id": "not-a-uuid"},
        {"event_id": "00000000-0000-0000-0000-000000000000"},
        {"pattern_id": "has space"},
        {"pattern_id": "p" * 201},
        {"executed_at": "2026-05-01T12:30:00"},
        {"success": "true"},
        {"execution_time_seconds": "12"},
        {"execution_time_seconds": -1},
        {"actual_cost": -1},
        {"actual_cost": "-1"},
        {"actual_cost": "1e5"},
        {"quality_score": 2},
        {"actual_tokens": -5},
        {"workflow_id": ""},
        {"attributes": []},
    ],
)
def test_schema_rejects_what_the_model_rejects(changes: dict[str, Any]) -> None:
    """The schema catches the structural rules, so producers find mistakes before publishing."""
    document = as_other_languages_see_it(example_document(**changes))
    assert not VALIDATOR.is_valid(document)
