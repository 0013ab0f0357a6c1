"""The OpenAPI document states the date parameters of /snapshots and /savings (`at`, `from`,
`to`) as real calendar dates, and the fuzz test's hooks (tests/schemathesis_hooks.py) drop a
stated value exactly when the server refuses it for a rule on the clock or across parameters."""

from __future__ import annotations

import re
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tests.schemathesis_hooks import breaks_clock_rule
from tests.strategies import NOW
from worker.api.app import openapi_document
from worker.api.openapi import date_pattern
from worker.roi.savings_series import MAX_PERIODS, periods_between
from worker.roi.snapshots import parse_at

DOCUMENT = openapi_document()
TODAY = NOW.date()
EDGES = [(TODAY + timedelta(days=n)).isoformat() for n in (-MAX_PERIODS, -1, 0, 1)] + [
    "1970-01-01",
    "2999-12-31",
]
stated = st.from_regex(date_pattern(), fullmatch=True) | st.sampled_from(EDGES)


def test_the_date_parameters_are_stated_as_calendar_dates() -> None:
    found = {}
    for path in ("/api/roi-tracking/snapshots/{pattern_id}", "/api/roi-tracking/savings"):
        for parameter in DOCUMENT["paths"][path]["get"]["parameters"]:
            if parameter["name"] in ("at", "from", "to"):
                (string,) = [b for b in parameter["schema"]["anyOf"] if b.get("type") == "string"]
                found[parameter["name"]] = string["pattern"]
                assert "not after today" in parameter["description"]
    assert found == dict.fromkeys(("at", "from", "to"), date_pattern())
    pattern = re.compile(date_pattern())
    assert pattern.fullmatch("2028-02-29")
    assert not pattern.fullmatch("2026-02-29")
    assert not pattern.fullmatch("1969-12-31")


def accepted_at(text: str) -> bool:
    try:
        parse_at(text, TODAY)
    except ValueError:
        return False
    return True


@given(stated)
def test_the_hook_drops_a_stated_at_exactly_when_it_is_refused(at: str) -> None:
    assert breaks_clock_rule({"at": at}, None, NOW) != accepted_at(at)


def savings_accepted(first: str, last: str) -> bool:
    """What the route accepts by day: `to` not after today, `from` not after `to`, at most
    MAX_PERIODS days."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    if end > TODAY:
        return False
    try:
        periods_between(start, end, "day")
    except ValueError:
        return False
    return True


@given(stated, stated)
def test_the_hook_drops_a_stated_savings_range_exactly_when_it_is_refused_by_day(
    first: str, last: str
) -> None:
    dropped = breaks_clock_rule({"from": first, "to": last}, None, NOW)
    assert dropped != savings_accepted(first, last)
