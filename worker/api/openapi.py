"""What the OpenAPI document states beyond what FastAPI writes from the routes.

The document states every rule the server enforces that holds whatever the date, so that a
request valid by it is refused only for a rule on the clock, which its descriptions say in
words. Where a rule cannot be written in JSON Schema exactly, the document states a part of what
the server accepts, and says the rest in words:

- Rules on the clock (`since`, `at`, `from` and `to` not in the future, `executed_at` at most
  1 day ahead of the server's clock): a schema cannot name today, and a fixed day would go
  stale. The document states real calendar dates up to LAST_YEAR, and its descriptions say what
  is checked at run time against the clock. A `since` of `Nd` is stated up to MAX_STATED_DAYS,
  which the server takes on any day since that bound was set (the largest N it takes grows by
  one a day).
  tests/schemathesis_hooks.py keeps the fuzz test from sending valid requests that break them.
- At most 40 decimal places in an event's number, as written: a schema sees values, not their
  spelling. It states 0 and the numbers from SMALLEST_NUMBER up, which every JSON library
  writes (shortest form, at most 17 significant digits) in at most 40 decimal places.
- A rule across two parameters (usage-stats' bucket count): the parameters are stated as one
  form-style object, whose schema can relate them.
  The savings series' rules across `from` and `to` (not after each other, at most MAX_PERIODS
  periods) depend on the clock when `to` is absent: they are said in words, and the hooks keep
  the fuzz test's valid cases within them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ..contract import event, range_patterns
from ..roi import usage_stats
from ..roi.methodology import EARLIEST
from . import models

# The last year stated where the server compares with its clock, as in the event contract
# (worker/contract/event.py): far ahead of any clock, so the clock rule is said in words.
LAST_YEAR: Final = 2999
# The largest N of a `since` of `Nd` stated: the window starts N-1 days before today, not before
# EARLIEST, so the server takes N up to (today - EARLIEST) + 1, a bound that only grows. This
# one is that bound on 2024-10-03: the server takes it on any day since.
MAX_STATED_DAYS: Final = 20_000
# The first year stated for executed_at: from it, any offset (at most 23:59) stays on or after
# event.EARLIEST_EXECUTED_AT (2000-01-01 UTC).
FIRST_EXECUTED_AT_YEAR: Final = 2001

_EVENT: Final = "ExecutionEvent"
SEED_EXECUTION: Final = "SeedExecution"  # seed 000's body of the POST (worker.api.models)
_DOUBLE_DIGITS: Final = 17  # significant digits of a double in its shortest form, at most
# The smallest number stated besides 0: from it up, 17 significant digits take at most
# MAX_DECIMAL_PLACES decimal places.
SMALLEST_NUMBER: Final = float(f"1e-{event.MAX_DECIMAL_PLACES - (_DOUBLE_DIGITS - 1)}")


def since_pattern() -> str:
    """`Nd` for N from 1 to MAX_STATED_DAYS, and the calendar dates from EARLIEST to the end of
    LAST_YEAR: the rules that hold whatever the date (the server also refuses a date after
    today)."""
    days = range_patterns.integer(1, MAX_STATED_DAYS)
    dates = range_patterns.date(EARLIEST.year, LAST_YEAR)
    return f"^({days}d|{dates})$"


def executed_at_pattern() -> str:
    """RFC 3339 date-times on the calendar days from FIRST_EXECUTED_AT_YEAR to LAST_YEAR, in
    any offset: every one is from 2000-01-01 in UTC (the server also refuses one more than 1
    day ahead of its clock)."""
    return "^" + range_patterns.date_time(FIRST_EXECUTED_AT_YEAR, LAST_YEAR) + "$"


def refused_usage_ranges() -> list[tuple[str, str]]:
    """(time_range, group_by) pairs that always make more than MAX_BUCKETS buckets.

    Raises RuntimeError for a pair whose count depends on the time of day or week: the
    document could not state it.
    """
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    moments = [monday + timedelta(hours=hours, minutes=30) for hours in range(0, 24 * 7, 5)]
    refused: list[tuple[str, str]] = []
    for time_range in usage_stats.TIME_RANGES:
        for group_by in usage_stats.GROUP_BYS:
            outcomes = set()
            for now in moments:
                try:
                    usage_stats.bucket_starts(now, time_range, group_by)
                    outcomes.add(True)
                except usage_stats.TooManyBucketsError:
                    outcomes.add(False)
            if outcomes == {False}:
                refused.append((time_range, group_by))
            elif outcomes != {True}:
                raise RuntimeError(f"{time_range} by {group_by} is refused only at some times")
    return refused


def state_rules(document: dict[str, Any]) -> None:
    """Adds to `document` (FastAPI's, with the event contract as components/schemas/
    ExecutionEvent) the rules FastAPI cannot write; changes it in place."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    schemas[_EVENT] = _event_schema(schemas[_EVENT], schemas)
    schemas[SEED_EXECUTION] = _seed_schema()
    for path, methods in document["paths"].items():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "since":
                    _state_since(parameter)
                elif parameter["name"] in DATE_PARAMETERS:
                    _state_date(parameter)
            if path.endswith("/usage-stats"):
                operation["parameters"] = _usage_parameters(operation["parameters"])


def _state_since(parameter: dict[str, Any]) -> None:
    # FastAPI writes anyOf [string with the server's pattern, null]; null means "absent".
    schema = parameter["schema"]
    (string,) = [branch for branch in schema["anyOf"] if branch.get("type") == "string"]
    string["pattern"] = since_pattern()
    parameter["description"] = schema["description"] = (
        f"{parameter['description']} Checked at run time against the server's clock: the "
        "day it starts from is not in the future (after today, UTC) and not before "
        f"{EARLIEST}. This document states `Nd` up to {MAX_STATED_DAYS}d (the server takes "
        f"more, while the window starts from {EARLIEST} on) and the calendar dates from "
        f"{EARLIEST} to {LAST_YEAR}-12-31, of which the server refuses those after today."
    )


# Date parameters (snapshots' `at`, the savings series' `from` and `to`): real calendar dates,
# not after today, from EARLIEST; the savings series also refuses `from` after `to` and more
# than MAX_PERIODS periods, rules across two parameters and the clock said in words.
DATE_PARAMETERS: Final = frozenset({"at", "from", "to"})


def date_pattern() -> str:
    """The calendar dates from EARLIEST to the end of LAST_YEAR."""
    return f"^{range_patterns.date(EARLIEST.year, LAST_YEAR)}$"


def _state_date(parameter: dict[str, Any]) -> None:
    schema = parameter["schema"]
    (string,) = [
        branch for branch in schema.get("anyOf", [schema]) if branch.get("type") == "string"
    ]
    string["pattern"] = date_pattern()
    parameter["description"] = schema["description"] = (
        f"{parameter['description']} Checked at run time against the server's clock: not after "
        f"today (UTC). This document states the calendar dates from {EARLIEST} to "
        f"{LAST_YEAR}-12-31, of which the server refuses those after today."
    )


def _usage_parameters(parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """time_range and group_by as one form-style object (`?time_range=90d&group_by=day` on the
    wire, as before), so that its schema can refuse the pairs making too many buckets."""
    related = {"time_range", "group_by"}
    together = [p for p in parameters if p["name"] in related]
    refused = refused_usage_ranges()
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            p["name"]: {**p["schema"], "description": p.get("description", "")} for p in together
        },
        "description": f"At most {usage_stats.MAX_BUCKETS:,} buckets, so these pairs are "
        "refused: " + ", ".join(f"{r} by {g}" for r, g in refused) + ".",
    }
    if refused:
        schema["not"] = {
            "anyOf": [
                {
                    "properties": {"time_range": {"const": r}, "group_by": {"const": g}},
                    "required": ["time_range", "group_by"],
                }
                for r, g in refused
            ]
        }
    range_parameter = {
        "name": "range",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "description": "time_range and group_by, sent as two query parameters "
        "(?time_range=30d&group_by=hour): one object here, so that its schema relates them.",
        "schema": schema,
    }
    return [p for p in parameters if p["name"] not in related] + [range_parameter]


def _event_schema(contract: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The event contract as the POST body takes it: its definitions moved among the
    document's components, and executed_at stated from FIRST_EXECUTED_AT_YEAR."""
    for name, definition in contract.get("$defs", {}).items():
        if name in schemas:
            raise RuntimeError(f"the event contract's {name} would replace the API's own")
        schemas[name] = _rebase(definition)
    schema: dict[str, Any] = _rebase({k: v for k, v in contract.items() if k != "$defs"})
    for field in schema["properties"].values():
        _state_places(field)
    executed_at = schema["properties"]["executed_at"]
    executed_at["pattern"] = executed_at_pattern()
    executed_at["description"] = (
        f"{executed_at['description']} Checked at run time against the server's clock: at "
        f"most {_days(event.MAX_CLOCK_SKEW)} ahead of the server's clock (UTC). This document "
        f"states the days from {FIRST_EXECUTED_AT_YEAR}-01-01 to {LAST_YEAR}-12-31 in any "
        "offset, of which the server refuses those more than "
        f"{_days(event.MAX_CLOCK_SKEW)} ahead of its clock; it also takes the date-times of the "
        "event contract (schemas/execution-event.v1.json) from "
        f"{event.EARLIEST_EXECUTED_AT:%Y-%m-%d} (UTC)."
    )
    return schema


def _seed_schema() -> dict[str, Any]:
    """Seed 000's body (models.SeedExecution), its numbers and executed_at stated as the
    event's are."""
    schema: dict[str, Any] = models.SeedExecution.model_json_schema()
    for field in schema["properties"].values():
        _state_places(field)
    executed_at = schema["properties"]["executed_at"]
    (string,) = [branch for branch in executed_at["anyOf"] if branch.get("type") == "string"]
    string["pattern"] = executed_at_pattern()
    executed_at["description"] += (
        f" Checked at run time against the server's clock: at most "
        f"{_days(event.MAX_CLOCK_SKEW)} ahead of it, as in the event contract."
    )
    return schema


def _days(span: timedelta) -> str:
    days = span / timedelta(days=1)
    if days != int(days):
        raise ValueError(f"{span} is not a whole number of days")
    return f"{int(days)} day" + ("" if days == 1 else "s")


def _state_places(field: dict[str, Any]) -> None:
    """A field's numbers from 0 as 0 or from SMALLEST_NUMBER up, wherever they are among its
    branches."""
    numeric = ("type", "minimum", "maximum")
    branches = field.get("anyOf") or [{key: field[key] for key in numeric if key in field}]
    stated: list[dict[str, Any]] = []
    for branch in branches:
        if branch.get("type") == "number" and branch.get("minimum") == 0:
            stated += [{"const": 0}, {**branch, "minimum": SMALLEST_NUMBER}]
        else:
            stated.append(branch)
    if len(stated) == len(branches):
        return
    if "anyOf" not in field:
        for key in numeric:
            field.pop(key, None)
    field["anyOf"] = stated
    field["description"] = (
        f"{field.get('description', '')} A number has at most {event.MAX_DECIMAL_PLACES} "
        f"decimal places as written: this document states 0 and the numbers from "
        f"{SMALLEST_NUMBER} up, which a JSON library's shortest form writes within that; the "
        "server takes any number of the event contract that is."
    ).strip()


def _rebase(schema: Any) -> Any:
    """A copy of `schema` with its `#/$defs/X` references as `#/components/schemas/X`."""
    if isinstance(schema, dict):
        return {
            key: (
                value.replace("#/$defs/", "#/components/schemas/", 1)
                if key == "$ref" and isinstance(value, str)
                else _rebase(value)
            )
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase(item) for item in schema]
    return schema
