"""schemathesis hooks for tests/integration/test_api_fuzz.py, which loads them through
SCHEMATHESIS_HOOKS (the path of this file).

The OpenAPI document cannot name today, so it states the rules on the clock in words only
(worker/api/openapi.py): a `since` date after today (UTC) is refused, and so is an event whose
`executed_at` is more than 1 day ahead of the server's clock (event.MAX_CLOCK_SKEW), though the
document's patterns take both (calendar dates up to 2999). A valid case breaking one of them
would be refused, rightly, and fail schemathesis' `positive_data_acceptance` check.

`filter_case` drops exactly those cases: a valid (positive, or unlabelled) case whose `since`
is a calendar date after today, or whose body, one event or an array of events, holds an
`executed_at` that is a real date-time more than 1 day ahead of now (UTC); and a valid case
whose Idempotency-Key header its body does not take (`breaks_idempotency_rule`). It is a
`filter_case` hook, not `filter_query`/`filter_body`, because schemathesis applies only case
hooks in the coverage phase (besides the fuzzing and stateful phases).

Negative cases are all kept: the server refuses them whatever the date (a date after today is
refused too), so `negative_data_rejection` still sees every malformed `since` and `executed_at`,
as well as the boundary ones. A value that is not a real date or date-time is never dropped.
The clock moves forward only, so a case kept here is still within the rules when sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

import schemathesis

from worker.api.ingest import IDEMPOTENCY_HEADER
from worker.contract.event import MAX_CLOCK_SKEW
from worker.roi.savings_series import MAX_PERIODS

_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339 as worker/contract/event.py reads it: T, t or a space; Z or z; 1 to 9 digits of a
# second, of which it keeps 6.
_DATE_TIME: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def since_in_future(since: object, today: date) -> bool:
    """Whether `since` is a calendar date after `today` (`Nd` never is: N >= 1)."""
    if not isinstance(since, str) or not _DATE.fullmatch(since):
        return False
    try:
        return date.fromisoformat(since) > today
    except ValueError:  # not a calendar date: refused whatever the date
        return False


def executed_at_too_far_ahead(executed_at: object, now: datetime) -> bool:
    """Whether `executed_at` is a real date-time more than MAX_CLOCK_SKEW ahead of `now`."""
    if not isinstance(executed_at, str):
        return False
    found = _DATE_TIME.fullmatch(executed_at)
    if found is None:
        return False
    day, time, fraction, offset = found.groups()
    micros = (fraction or "")[:6].ljust(6, "0")
    zone = "+00:00" if offset in ("Z", "z") else offset
    try:
        moment = datetime.fromisoformat(f"{day}T{time}.{micros}{zone}")
    except ValueError:  # not a real day, hour or offset: refused whatever the date
        return False
    return moment > now + MAX_CLOCK_SKEW


def breaks_clock_rule(query: dict[str, Any] | None, body: object, now: datetime) -> bool:
    """Whether a request with this query and body breaks a rule on the clock at `now`."""
    today = now.astimezone(UTC).date()
    if query and any(since_in_future(query.get(name), today) for name in ("since", "at", "to")):
        return True
    if query and breaks_savings_range(query.get("from"), query.get("to"), today):
        return True
    events = body if isinstance(body, list) else [body]
    return any(
        isinstance(event, dict) and executed_at_too_far_ahead(event.get("executed_at"), now)
        for event in events
    )


def breaks_savings_range(first: object, last: object, today: date) -> bool:
    """Whether real calendar dates `from` and `to` (today when absent) make a range the savings
    series refuses: `from` after `to`, or more than MAX_PERIODS days (so too many periods by
    day; the document states the parameters one at a time)."""
    days = [first, today.isoformat() if last is None else last]
    if not all(isinstance(d, str) and _DATE.fullmatch(d) for d in days):
        return False
    try:
        start, end = (date.fromisoformat(str(d)) for d in days)
    except ValueError:  # not a calendar date: refused whatever the date
        return False
    return start > end or (end - start).days >= MAX_PERIODS


def breaks_idempotency_rule(headers: Mapping[str, Any] | None, body: object) -> bool:
    """Whether a request sends an Idempotency-Key its body does not take, a rule between the
    header and the body that the document states in words only (worker/api/ingest.py): a seed
    body (no schema_version) needs executed_at with it; a v1 event takes it only equal to its
    event_id; an array takes none."""
    key = (headers or {}).get(IDEMPOTENCY_HEADER)
    if key is None:
        return False
    if not isinstance(body, dict):
        return True
    if "schema_version" not in body:
        return body.get("executed_at") is None
    return str(body.get("event_id", "")).lower() != str(key).lower()


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> bool:
    """Keeps every case but a valid one that breaks a rule on the clock now, or the rule
    between the Idempotency-Key header and the body."""
    positive = case.meta is None or case.meta.generation.mode.is_positive
    return not (
        positive
        and (
            breaks_clock_rule(case.query, case.body, datetime.now(UTC))
            or breaks_idempotency_rule(case.headers, case.body)
        )
    )
