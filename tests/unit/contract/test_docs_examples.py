"""The docs tell the truth: their examples behave as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.strategies import NOW
from worker.contract.validate import parse_event
from worker.errors import InvalidEventError

DOCS = Path(__file__).parents[3] / "docs"
EXAMPLE = re.compile(r"```json\n(?P<body>.*?)\n```\n(?P<verdict>[^\n]*)", re.DOTALL)


def contract_examples() -> list[tuple[str, str]]:
    text = (DOCS / "event-contract.md").read_text(encoding="utf-8")
    return [(match["body"], match["verdict"]) for match in EXAMPLE.finditer(text)]


def test_the_contract_page_has_valid_and_invalid_examples() -> None:
    """The page shows both kinds, so the parametrised test below checks something."""
    verdicts = [verdict for _, verdict in contract_examples()]
    assert verdicts.count("Accepted.") >= 2
    assert sum(verdict.startswith("Rejected: ") for verdict in verdicts) >= 8


@pytest.mark.parametrize(("body", "verdict"), contract_examples())
def test_contract_examples_get_the_documented_verdict(body: str, verdict: str) -> None:
    """Each example is accepted, or rejected with exactly the error the page prints."""
    if verdict == "Accepted.":
        parse_event(body.encode(), now=NOW)
        return
    match = re.fullmatch(r"Rejected: `(?P<error>.+)`", verdict)
    assert match, f"an example must be followed by 'Accepted.' or 'Rejected: `error`': {verdict!r}"
    with pytest.raises(InvalidEventError) as caught:
        parse_event(body.encode(), now=NOW)
    assert str(caught.value) == match["error"]
