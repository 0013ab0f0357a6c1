"""The circuit breaker: trips on a window of mostly invalid messages, never on a thin spread."""

from __future__ import annotations

import pytest

from worker.consume.circuit_breaker import WINDOW, CircuitBreaker
from worker.errors import CircuitOpenError


def feed(breaker: CircuitBreaker, outcomes: list[bool]) -> int:
    """Records outcomes; returns how many were recorded before it tripped (len if never)."""
    for index, invalid in enumerate(outcomes):
        try:
            breaker.record(invalid, ("t", 0))
        except CircuitOpenError:
            return index
    return len(outcomes)


def test_trips_once_a_full_window_is_mostly_invalid() -> None:
    breaker = CircuitBreaker(0.5)
    assert feed(breaker, [True] * (WINDOW + 1)) == WINDOW - 1


def test_needs_a_full_window_before_it_judges() -> None:
    assert feed(CircuitBreaker(0.5), [True] * (WINDOW - 1)) == WINDOW - 1


def test_exactly_the_ratio_does_not_trip_one_more_does() -> None:
    half = [True, False] * (WINDOW // 2)
    assert feed(CircuitBreaker(0.5), half) == WINDOW
    assert feed(CircuitBreaker(0.5), [*half[1:], True, True]) == WINDOW


def test_invalid_events_spread_thinly_never_trip_it() -> None:
    stream = [index % 10 == 0 for index in range(10_000)]
    assert feed(CircuitBreaker(0.5), stream) == len(stream)


def test_the_window_slides_old_invalid_messages_out() -> None:
    stream = [True] * 50 + [False] * 1000 + [True] * 50
    assert feed(CircuitBreaker(0.5), stream) == len(stream)


def test_zero_disables_it() -> None:
    assert feed(CircuitBreaker(0), [True] * 10_000) == 10_000


def test_the_error_says_what_happened_and_what_to_do() -> None:
    breaker = CircuitBreaker(0.25)
    feed(breaker, [True] * (WINDOW - 1))
    with pytest.raises(CircuitOpenError) as caught:
        breaker.record(invalid=True)
    message = str(caught.value)
    assert f"{WINDOW} of the last {WINDOW} messages were invalid" in message
    assert "ROI_DLQ_MAX_RATIO=0.25" in message
    assert "ROI_DLQ_MAX_RATIO=0 dead-letters them all" in message


def test_the_error_names_the_partitions_and_the_ratio() -> None:
    """What /readyz and roi_worker_circuit_open report: where the invalid messages came from."""
    breaker = CircuitBreaker(0.5)
    for index in range(WINDOW - 1):
        breaker.record(index % 4 != 0, ("events", index % 2))
    with pytest.raises(CircuitOpenError) as opened:
        breaker.record(True, ("events", 1))
    assert opened.value.partitions == (("events", 0), ("events", 1))
    assert opened.value.ratio == pytest.approx(0.75)
    assert "from events/0, events/1" in str(opened.value)
