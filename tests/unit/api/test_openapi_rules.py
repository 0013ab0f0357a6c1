"""The OpenAPI document against the server's own checks: a request valid by the document is
accepted (worker.api.openapi), at the edges where the two could part, but for the rules on the
clock, which its descriptions state in words and the fuzz test's hooks (tests/
schemathesis_hooks.py) keep its valid cases within; no service needed."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis.generation import GenerationMode
from schemathesis.generation.meta import (
    CaseMetadata,
    FuzzingPhaseData,
    GenerationInfo,
    PhaseInfo,
    TestPhase,
)

from tests.schemathesis_hooks import breaks_clock_rule, filter_case
from tests.strategies import NOW, example_document
from worker.api import openapi
from worker.api.app import openapi_document
from worker.api.routes.common import USAGE
from worker.api.routes.patterns import SINCE_RE
from worker.contract import range_patterns
from worker.contract.event import MAX_CLOCK_SKEW, MAX_SECONDS
from worker.contract.validate import parse_event
from worker.errors import InvalidEventError
from worker.roi.methodology import EARLIEST, Window
from worker.roi.usage_stats import GROUP_BYS, TIME_RANGES, TooManyBucketsError, bucket_starts

DOCUMENT = openapi_document()
EVENT = Draft202012Validator(
    {"$ref": "#/components/schemas/ExecutionEvent", "components": DOCUMENT["components"]}
)


def parameter(path: str, name: str) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = DOCUMENT["paths"][path]["get"]["parameters"]
    (found,) = [p for p in parameters if p["name"] == name]
    return found


def accepted(document: dict[str, Any]) -> bool:
    """Whether the server takes the event now (its real clock, as when it runs)."""
    try:
        parse_event(json.dumps(document, default=float).encode())
    except InvalidEventError:
        return False
    return True


def since_accepted(text: str) -> bool:
    """The server's two checks of `since`: the route's pattern, then Window.parse."""
    if not re.fullmatch(SINCE_RE, text):
        return False
    try:
        Window.parse(text, datetime.now(UTC).date())
    except ValueError:
        return False
    return True


def since_pattern() -> re.Pattern[str]:
    (string,) = [
        b
        for b in parameter("/api/roi-tracking/summary", "since")["schema"]["anyOf"]
        if "pattern" in b
    ]
    return re.compile(string["pattern"])


def test_every_since_the_document_states_is_accepted_up_to_today() -> None:
    """Day counts, calendar days and impossible dates around every bound: a stated date is
    accepted exactly when it is not after today (the clock rule, said in the description), a
    stated day count always; every day from EARLIEST to the end of LAST_YEAR is stated."""
    stated = since_pattern()
    today = datetime.now(UTC).date()
    max_days = openapi.MAX_STATED_DAYS
    days = [f"{n}d" for n in (0, 1, 7, 10, 99, 100, 9999, 10000, max_days, max_days + 1, 99999)]
    first, last = date(1969, 12, 1), today + timedelta(days=40)
    calendar = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days)]
    impossible = [
        f"{y}-{m:02d}-{d:02d}"
        for y in (1970, 2024, 2025, 2999)
        for m in (0, 2, 4, 13)
        for d in (0, 29, 30, 31, 32)
    ]
    edges = ["2999-12-31", "3000-01-01", "0000-01-01", "9999-12-31"]
    for text in days + calendar + impossible + edges:
        if stated.fullmatch(text):
            in_future = not text.endswith("d") and date.fromisoformat(text) > today
            assert since_accepted(text) != in_future, text
    span = (today - EARLIEST).days + 1
    assert all(stated.fullmatch((EARLIEST + timedelta(days=n)).isoformat()) for n in range(span))
    assert all(stated.fullmatch(f"{n}d") for n in range(1, max_days + 1))
    assert not stated.fullmatch(f"{max_days + 1}d")
    assert all(stated.fullmatch(text) for text in ("2999-12-31", "2996-02-29"))
    assert not any(stated.fullmatch(text) for text in ("3000-01-01", "2100-02-29"))


def test_the_largest_stated_day_count_is_accepted_on_any_day_since_it_was_set() -> None:
    """The largest N the server takes only grows: MAX_STATED_DAYS was the bound on 2024-10-03,
    before any day the document is served."""
    set_on = date(2024, 10, 3)
    Window.parse(f"{openapi.MAX_STATED_DAYS}d", set_on)
    with pytest.raises(ValueError, match="starts before"):
        Window.parse(f"{openapi.MAX_STATED_DAYS}d", set_on - timedelta(days=1))
    assert since_accepted(f"{openapi.MAX_STATED_DAYS}d")


def test_the_descriptions_state_the_rules_on_the_clock() -> None:
    """What the patterns cannot say is said in words, the same on every operation."""
    for path, methods in DOCUMENT["paths"].items():
        for name in [p["name"] for p in methods.get("get", {}).get("parameters", [])]:
            if name == "since":
                described = parameter(path, "since")
                for description in (described["description"], described["schema"]["description"]):
                    assert "not in the future" in description
                    assert f"not before {EARLIEST}" in description
    executed_at = DOCUMENT["components"]["schemas"]["ExecutionEvent"]["properties"]["executed_at"]
    assert "at most 1 day ahead of the server's clock" in executed_at["description"]
    assert "2000-01-01" in executed_at["description"]


def test_the_document_states_the_usage_ranges_the_server_refuses() -> None:
    """time_range and group_by are one object whose schema refuses exactly the pairs that make
    too many buckets (90d by hour)."""
    (together,) = [
        p
        for p in DOCUMENT["paths"][f"{USAGE}/usage-stats"]["get"]["parameters"]
        if p["name"] == "range"
    ]
    assert (together["style"], together["explode"]) == ("form", True)
    schema = Draft202012Validator(together["schema"])
    now = datetime.now(UTC)
    for time_range in TIME_RANGES:
        for group_by in GROUP_BYS:
            try:
                bucket_starts(now, time_range, group_by)
                refused = False
            except TooManyBucketsError:
                refused = True
            query = {"time_range": time_range, "group_by": group_by}
            assert schema.is_valid(query) != refused, query
    assert openapi.refused_usage_ranges() == [("90d", "hour")]


def test_the_documents_executed_at_is_accepted_up_to_1_day_ahead() -> None:
    """From 2001 to 2999, in any offset: never before 2000 in UTC; a stated date-time is
    accepted exactly when it is at most 1 day ahead of the clock (said in the description)."""
    now = datetime.now(UTC)
    ahead = now + MAX_CLOCK_SKEW
    close = (ahead - timedelta(minutes=1)).replace(microsecond=123456)
    past = (ahead + timedelta(minutes=1)).replace(microsecond=123456)
    cases = [  # (executed_at, stated, accepted now)
        ("2001-01-01T00:00:00+23:59", True, True),  # 2000-12-31T00:01Z
        ("2024-02-29T12:00:00Z", True, True),
        (close.strftime("%Y-%m-%dT%H:%M:%S.%f000Z"), True, True),
        (close.astimezone(timezone(timedelta(hours=-23, minutes=-59))).isoformat(" "), True, True),
        (close.strftime("%Y-%m-%dt%H:%M:%Sz"), True, True),
        (past.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), True, False),
        (past.astimezone(timezone(timedelta(hours=23, minutes=59))).isoformat(), True, False),
        ("2999-12-31T23:59:59Z", True, False),
        ("2996-02-29T00:00:00-01:00", True, False),
        ("2025-02-29T12:00:00Z", False, False),
        ("2000-12-31T23:59:59Z", False, True),  # accepted, not stated: the document starts in 2001
        ("3000-01-01T00:00:00Z", False, False),
    ]
    for executed_at, stated, taken in cases:
        document = example_document(executed_at=executed_at)
        assert EVENT.is_valid(document) == stated, executed_at
        assert accepted(document) == taken, executed_at


@given(
    st.floats(min_value=openapi.SMALLEST_NUMBER, max_value=float(MAX_SECONDS))
    | st.sampled_from([0.0, openapi.SMALLEST_NUMBER, float(MAX_SECONDS)])
)
def test_every_number_the_document_states_is_accepted(number: float) -> None:
    """0 and every double from SMALLEST_NUMBER up, as a JSON library writes it (its shortest
    form), has at most 40 decimal places."""
    score = min(number, 1.0)
    document = example_document(
        execution_time_seconds=number, actual_cost=number, quality_score=score
    )
    assert EVENT.is_valid(document)
    assert accepted(document)


@pytest.mark.parametrize(
    "number", [5e-324, 1e-25, math.nextafter(openapi.SMALLEST_NUMBER, 0), 1.1754943508222875e-38]
)
def test_the_document_states_no_number_below_the_smallest_but_zero(number: float) -> None:
    """Below SMALLEST_NUMBER a double's shortest form may take more than 40 decimal places."""
    assert not EVENT.is_valid(example_document(execution_time_seconds=number))


def test_the_documents_event_keeps_the_contracts_other_rules() -> None:
    """The contract's storable-JSON definition moved among the components, and still applies
    to attributes and unknown fields."""
    assert EVENT.is_valid(example_document(attributes={"a": [1, "b"]}, team={"c": None}))
    assert not EVENT.is_valid(example_document(attributes={"a": ["\x00"]}))
    assert not EVENT.is_valid(example_document(team={"\x00": 1}))
    assert "$defs" not in json.dumps(DOCUMENT)


@pytest.mark.parametrize(
    ("first", "last", "last_month"), [(1970, 2026, 11), (2001, 2025, 12), (1999, 2001, 1)]
)
def test_date_patterns_match_exactly_the_calendar(first: int, last: int, last_month: int) -> None:
    """Every string YYYY-MM-DD with a month 00-13 and a day 00-32 around the range: matched
    exactly when it is a date in the range."""
    pattern = re.compile(range_patterns.date(first, last, last_month))
    for year in range(first - 1, last + 2):
        for month in range(14):
            for day in range(33):
                text = f"{year:04d}-{month:02d}-{day:02d}"
                try:
                    real = date.fromisoformat(text)
                except ValueError:
                    valid = False
                else:
                    valid = first <= real.year and (real.year, real.month) <= (last, last_month)
                assert bool(pattern.fullmatch(text)) == valid, text


def test_integer_patterns_match_exactly_the_range() -> None:
    """No leading zeros, no number outside."""
    for low, high in ((1, 20787), (0, 9), (1, 100), (5, 5)):
        pattern = re.compile(range_patterns.integer(low, high))
        assert all(
            bool(pattern.fullmatch(str(n))) == (low <= n <= high) for n in range(high * 2 + 10)
        )
        assert not pattern.fullmatch(f"0{low}")


# The fuzz test's hooks (tests/schemathesis_hooks.py): a valid case is dropped exactly when the
# server would refuse it for a rule on the clock; nothing else is dropped.
STATED_SINCE = since_pattern().pattern
STATED_EXECUTED_AT = DOCUMENT["components"]["schemas"]["ExecutionEvent"]["properties"][
    "executed_at"
]["pattern"]


def accepted_at(document: dict[str, Any], now: datetime) -> bool:
    try:
        parse_event(json.dumps(document, default=float).encode(), now=now)
    except InvalidEventError:
        return False
    return True


def since_accepted_on(text: str, today: date) -> bool:
    try:
        Window.parse(text, today)
    except ValueError:
        return False
    return True


SINCE_EDGES = [(NOW.date() + timedelta(days=n)).isoformat() for n in (-1, 0, 1, 2)] + [
    "1d",
    f"{openapi.MAX_STATED_DAYS}d",
    "2999-12-31",
    "1970-01-01",
]


@given(st.from_regex(STATED_SINCE, fullmatch=True) | st.sampled_from(SINCE_EDGES))
def test_the_hook_drops_a_stated_since_exactly_when_it_is_refused(since: str) -> None:
    """Every `since` the document states: dropped exactly when the server refuses it, which is
    when it is a date after today."""
    assert breaks_clock_rule({"since": since}, None, NOW) != since_accepted_on(since, NOW.date())


EXECUTED_AT_EDGES = [
    moment.strftime(spelling)
    for moment in (
        NOW + MAX_CLOCK_SKEW,
        NOW + MAX_CLOCK_SKEW + timedelta(microseconds=1),
        NOW + MAX_CLOCK_SKEW - timedelta(microseconds=1),
    )
    for spelling in ("%Y-%m-%dT%H:%M:%S.%f999Z", "%Y-%m-%d %H:%M:%S.%fz")
] + [
    (NOW + MAX_CLOCK_SKEW + timedelta(seconds=s)).astimezone(timezone(offset)).isoformat()
    for s in (-1, 0, 1)
    for offset in (timedelta(hours=23, minutes=59), -timedelta(hours=23, minutes=59))
]


@given(
    st.from_regex(STATED_EXECUTED_AT, fullmatch=True) | st.sampled_from(EXECUTED_AT_EDGES),
    st.sampled_from(["one", "first", "last"]),
)
def test_the_hook_drops_a_stated_executed_at_exactly_when_it_is_refused(
    executed_at: str, where: str
) -> None:
    """Every `executed_at` the document states, alone or in an array of events: dropped
    exactly when the server refuses the event, which is when it is more than 1 day ahead."""
    event = example_document(executed_at=executed_at)
    other = example_document()
    body = {"one": event, "first": [event, other], "last": [other, event]}[where]
    assert EVENT.is_valid(event)
    assert breaks_clock_rule(None, json.loads(json.dumps(body, default=float)), NOW) != (
        accepted_at(event, NOW)
    )


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ({"since": "2026-02-30"}, None),  # not a date: refused, never a clock rule
        ({"since": "100000d"}, None),
        ({"since": ["2999-01-01"]}, None),
        ({"since": None, "limit": "x"}, None),
        (None, {"executed_at": "2999-02-29T00:00:00Z"}),
        (None, {"executed_at": "2999-01-01T24:00:00Z"}),
        (None, {"executed_at": "2999-01-01T00:00:00+24:00"}),
        (None, {"executed_at": "2999-01-01T00:00:00"}),
        (None, {"executed_at": 32503680000}),
        (None, [{"executed_at": "29990101T000000Z"}, "2999-01-01T00:00:00Z", None]),
        (None, "2999-01-01T00:00:00Z"),
    ],
)
def test_the_hook_keeps_what_breaks_no_clock_rule(query: Any, body: Any) -> None:
    """Malformed values are refused whatever the date: never dropped, so negative cases of the
    same fields still run."""
    assert not breaks_clock_rule(query, body, NOW)


def test_the_hook_drops_only_valid_cases_breaking_a_clock_rule_now() -> None:
    """On schemathesis' own cases, with the real clock: a valid (or unlabelled) case is dropped
    when it breaks a clock rule; a negative one, refused anyway, is always kept."""
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    summary = schema["/api/roi-tracking/summary"]["GET"]
    post = schema["/api/roi-tracking/executions"]["POST"]
    now = datetime.now(UTC)
    soon = (now + timedelta(hours=23)).isoformat()
    late = (now + timedelta(hours=25)).isoformat()
    tomorrow = (now + timedelta(days=1)).date().isoformat()
    cases = [  # (case, breaks a clock rule now)
        (summary.Case(query={"since": now.date().isoformat()}), False),
        (summary.Case(query={"since": "30d", "limit": 5}), False),
        (summary.Case(query={"since": tomorrow}), True),
        (post.Case(body=example_document(executed_at=soon)), False),
        (post.Case(body=example_document(executed_at=late)), True),
        (post.Case(body=[example_document(), example_document(executed_at=late)]), True),
    ]
    context = schemathesis.HookContext(operation=summary)
    for case, breaks in cases:
        for mode in (None, GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            case._meta = None if mode is None else metadata(mode)
            assert filter_case(context, case) == (not breaks or mode is GenerationMode.NEGATIVE)


def metadata(mode: GenerationMode) -> CaseMetadata:
    return CaseMetadata(
        generation=GenerationInfo(time=0.0, mode=mode),
        components={},
        phase=PhaseInfo(
            name=TestPhase.FUZZING,
            data=FuzzingPhaseData(
                description=None, parameter=None, parameter_location=None, location=None
            ),
        ),
    )
