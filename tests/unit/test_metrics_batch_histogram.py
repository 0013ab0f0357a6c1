"""worker.metrics.BatchHistogram serves what prometheus_client's Histogram serves, fed the same
values one by one."""

from __future__ import annotations

import random

from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from worker.metrics import DELAY_BUCKETS, BatchHistogram, WorkerMetrics

NAME = "roi_test_delay_seconds"
HELP = "A delay."

# Any delay the worker can observe (clamped at 0), the bucket bounds themselves, and the
# values just around them, where `<=` decides the bucket.
_BOUNDS = [float(bound) for bound in DELAY_BUCKETS]
delays = st.one_of(
    st.floats(min_value=0, max_value=10 * DELAY_BUCKETS[-1], allow_nan=False),
    st.sampled_from(_BOUNDS),
    st.sampled_from(_BOUNDS).map(lambda bound: bound * (1 + 1e-16)),
    st.sampled_from(_BOUNDS).map(lambda bound: bound * (1 - 1e-16)),
    st.just(0.0),
)


def expositions(batches: list[list[float]]) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    """Both expositions (Prometheus text and OpenMetrics) of a Histogram fed each value, and
    of a BatchHistogram fed each batch."""
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram(NAME, HELP, buckets=DELAY_BUCKETS, registry=one_by_one)
    batch_histogram = BatchHistogram(NAME, HELP, buckets=DELAY_BUCKETS, registry=batched)
    for batch in batches:
        for value in batch:
            histogram.observe(value)
        batch_histogram.observe_batch(batch)
    return (
        (generate_latest(one_by_one), generate_openmetrics(one_by_one)),  # type: ignore[no-untyped-call]
        (generate_latest(batched), generate_openmetrics(batched)),  # type: ignore[no-untyped-call]
    )


@given(st.lists(st.lists(delays, max_size=40), max_size=6))
# A sum added once per batch rounds differently: (0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3).
@example([[0.1], [0.2, 0.3]])
def test_batches_expose_what_one_observation_per_value_exposes(batches: list[list[float]]) -> None:
    """Bucket counts, count and sum (to the last bit) equal those of Histogram.observe called
    on every value in order, in both exposition formats."""
    one_by_one, batched = expositions(batches)
    assert batched == one_by_one


def test_random_delays_of_a_run_expose_the_same() -> None:
    """5,000-value batches of delays from a second to a month, as a catching-up worker
    observes them, expose the same as one observation per value."""
    rng = random.Random(18)
    batches = [[rng.uniform(0, 30 * 86400) for _ in range(5000)] for _ in range(4)]
    one_by_one, batched = expositions(batches)
    assert batched == one_by_one
    assert b"roi_test_delay_seconds_count 20000.0" in batched[0]


def test_the_worker_serves_event_delay_as_a_histogram() -> None:
    """roi_worker_event_delay_seconds is a histogram of the worker's registry, empty at start
    and counted per observed event."""
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    read = registry.get_sample_value
    assert read("roi_worker_event_delay_seconds_count") == 0
    metrics.event_delay.observe_batch([0.05, 2.0, 700000.0])
    assert read("roi_worker_event_delay_seconds_bucket", {"le": "0.1"}) == 1
    assert read("roi_worker_event_delay_seconds_bucket", {"le": "604800.0"}) == 2
    assert read("roi_worker_event_delay_seconds_bucket", {"le": "+Inf"}) == 3
    assert read("roi_worker_event_delay_seconds_sum") == 0.05 + 2.0 + 700000.0
