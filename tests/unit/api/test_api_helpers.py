"""The API's pure helpers: POST body parsing, usage-stats buckets and the answer cache."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import example_document
from worker.api.cache import MAX_KEYS, TtlCache
from worker.api.ingest import InvalidBodyError, parse_events
from worker.api.models import MAX_EVENTS_PER_REQUEST
from worker.contract import json_codec
from worker.roi.usage_stats import (
    GROUP_BYS,
    MAX_BUCKETS,
    RANGES,
    STEPS,
    TIME_RANGES,
    TooManyBucketsError,
    bucket_starts,
    truncate,
)


def body(value: Any) -> bytes:
    return json_codec.dumps(value).encode()


def event_id(n: int) -> str:
    return f"{n + 1:08x}-0000-4000-8000-000000000000"


def problems(raw: bytes) -> list[tuple[list[str | int], str]]:
    with pytest.raises(InvalidBodyError) as caught:
        parse_events(raw)
    return [(p.loc, p.type) for p in caught.value.problems]


# --------------------------------------------------------------------------- POST bodies


def test_one_object_and_an_array_both_give_their_events_in_order() -> None:
    assert [e.pattern_id for e in parse_events(body(example_document()))] == [
        "test-retry-automation"
    ]
    documents = [example_document(event_id=event_id(n), pattern_id=f"p{n}") for n in range(3)]
    assert [e.pattern_id for e in parse_events(body(documents))] == ["p0", "p1", "p2"]


def test_amounts_stay_exact_decimals() -> None:
    (event,) = parse_events(b'{"actual_cost": 0.1, ' + body(example_document(actual_cost=...))[1:])
    assert str(event.actual_cost) == "0.1"


def test_every_broken_event_of_an_array_is_named_by_index_and_field() -> None:
    documents = [
        example_document(event_id=event_id(0)),
        example_document(event_id=event_id(1), actual_cost="-1"),
        "not an event",
        example_document(event_id=event_id(3), pattern_id=...),
    ]
    assert problems(body(documents)) == [
        (["body", 1, "actual_cost"], "decimal_string"),
        (["body", 2], "not_an_object"),
        (["body", 3, "pattern_id"], "missing"),
    ]


def test_a_single_object_is_located_without_an_index() -> None:
    assert problems(body(example_document(success="yes"))) == [(["body", "success"], "bool_type")]


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b"\xff{}", "not_utf8"),
        (b"{", "invalid_json"),
        (b'{"a": 1, "a": 2}', "invalid_json"),
        (b"NaN", "invalid_json"),
        (b"42", "body_type"),
        (b"null", "body_type"),
        (b"[]", "too_short"),
    ],
)
def test_a_body_that_is_not_events_is_one_problem_of_the_whole_body(raw: bytes, rule: str) -> None:
    assert problems(raw) == [(["body"], rule)]


def test_more_than_the_limit_is_refused_before_any_event_is_validated() -> None:
    # Invalid events: were they validated, their problems would be listed instead.
    raw = json.dumps([{}] * (MAX_EVENTS_PER_REQUEST + 1)).encode()
    with pytest.raises(InvalidBodyError, match="holds 1,001 events; at most 1,000") as caught:
        parse_events(raw)
    assert [p.type for p in caught.value.problems] == ["too_long"]


# --------------------------------------------------------------------------- usage buckets

SUNDAY = datetime(2026, 11, 22, 10, 30, 15, tzinfo=UTC)


def test_buckets_are_utc_and_weeks_start_on_monday() -> None:
    paris = timezone(timedelta(hours=1))
    moment = datetime(2026, 11, 23, 0, 30, tzinfo=paris)  # Sunday 23:30 UTC
    assert truncate(moment, "hour") == datetime(2026, 11, 22, 23, tzinfo=UTC)
    assert truncate(moment, "day") == datetime(2026, 11, 22, tzinfo=UTC)
    assert truncate(moment, "week") == datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
    assert truncate(datetime(2026, 11, 16, tzinfo=UTC), "week") == datetime(
        2026, 11, 16, tzinfo=UTC
    )


def test_the_range_is_whole_buckets_ending_with_the_running_one() -> None:
    days = bucket_starts(SUNDAY, "7d", "day")
    assert days[0] == datetime(2026, 11, 15, tzinfo=UTC)
    assert days[-1] == datetime(2026, 11, 22, tzinfo=UTC)
    assert len(days) == 8
    hours = bucket_starts(SUNDAY, "1d", "hour")
    assert (hours[0], hours[-1], len(hours)) == (
        datetime(2026, 11, 21, 10, tzinfo=UTC),
        datetime(2026, 11, 22, 10, tzinfo=UTC),
        25,
    )


def test_too_many_buckets_names_the_way_out() -> None:
    with pytest.raises(TooManyBucketsError, match="makes 2,161 buckets, more than the 1,000"):
        bucket_starts(SUNDAY, "90d", "hour")


@given(
    st.datetimes(
        min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(TIME_RANGES),
    st.sampled_from(GROUP_BYS),
)
def test_buckets_are_contiguous_and_cover_the_range(
    now: datetime, time_range: Any, group_by: Any
) -> None:
    try:
        buckets = bucket_starts(now, time_range, group_by)
    except TooManyBucketsError:
        assert (time_range, group_by) == ("90d", "hour")
        return
    step = STEPS[group_by]
    assert len(buckets) <= MAX_BUCKETS
    assert all(truncate(b, group_by) == b for b in buckets)
    assert all(later - earlier == step for earlier, later in itertools.pairwise(buckets))
    assert buckets[0] <= now - RANGES[time_range] < buckets[0] + step
    assert buckets[-1] <= now < buckets[-1] + step


# --------------------------------------------------------------------------- the answer cache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def test_an_answer_is_shared_until_it_is_older_than_the_ttl() -> None:
    clock, compute = Clock(), Counter()
    cache: TtlCache[str, int] = TtlCache(2.0, clock)
    assert cache.get("k", compute) == 1
    clock.now = 1.9
    assert cache.get("k", compute) == 1
    assert cache.get("other", compute) == 2
    clock.now = 2.0
    assert cache.get("k", compute) == 3


def test_zero_seconds_turns_the_cache_off() -> None:
    compute = Counter()
    cache: TtlCache[str, int] = TtlCache(0, Clock())
    assert [cache.get("k", compute) for _ in range(3)] == [1, 2, 3]


def test_a_failed_computation_is_not_kept_and_leaves_no_lock_behind() -> None:
    cache: TtlCache[str, int] = TtlCache(2.0, Clock())

    def fail() -> int:
        raise RuntimeError("database down")

    for n in range(MAX_KEYS * 2):
        with pytest.raises(RuntimeError):
            cache.get(f"key-{n}", fail)
    assert cache._locks == {}  # the leak this guards against is internal
    assert cache.get("key-0", lambda: 7) == 7


def test_the_oldest_answer_goes_when_the_cache_is_full() -> None:
    clock, compute = Clock(), Counter()
    cache: TtlCache[int, int] = TtlCache(100.0, clock)
    for key in range(MAX_KEYS + 1):
        clock.now = key
        cache.get(key, compute)
    assert compute.calls == MAX_KEYS + 1
    cache.get(MAX_KEYS, compute)  # the newest: still kept
    assert compute.calls == MAX_KEYS + 1
    cache.get(0, compute)  # the oldest: dropped, so computed again
    assert compute.calls == MAX_KEYS + 2
