"""The published JSON Schema: in sync with the model, and agreeing with it on real documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from jsonschema import Draft202012Validator

from tests.strategies import example_document, valid_documents
from worker import json_codec, schemas

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
