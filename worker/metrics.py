"""Prometheus metrics: the worker's own counters, and per-pattern ROI read from the database.

The metric names are a contract (docs/metrics.md; alerts and dashboards use them). Per-pattern
and total figures are read from PostgreSQL at scrape time, so every replica reports the same
numbers: aggregate them across replicas with max(), never sum(). Amounts are exact Decimals in
the database and become floats only here, at the exposition boundary, as Prometheus requires.
"""

from __future__ import annotations

import bisect
import functools
import logging
import operator
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

import psycopg
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

from .db.connect import WORKER_SESSION, connect, first_line
from .errors import InvalidReason, RetryableError
from .roi.analytics import totals_from_row
from .roi.methodology import COST_ANOMALY_FACTOR, Rating, Totals, Window, rate
from .roi.month_to_date import MonthToDate, read_month_to_date
from .roi.summaries import SUMS
from .types import Outcome

log = logging.getLogger(__name__)

OUTCOMES: Final = tuple(Outcome)
REBALANCE_KINDS: Final = ("assigned", "revoked")
BATCH_SECONDS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_SIZE_BUCKETS: Final = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)
# From "just now" to a week late: replays of old events land in the top buckets.
DELAY_BUCKETS: Final = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400, 604800)
PATTERN_CACHE_SECONDS: Final = 2.0  # scrapes within this window reuse one query
LOCK_WAIT_SECONDS: Final = 5.0
# The windows of roi_pattern_window_*: label -> the `roi-worker report --since` it counts, in whole
# UTC days of executed_at up to today (the daily rollups are per UTC day). "2d" is today and
# yesterday: the last 24 hours and up to 24 more; "7d" is today and the 6 days before.
WINDOWS: Final = {"24h": "2d", "7d": "7d"}

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the output and nobody here reads them


class WorkerMetrics:
    """The roi_worker_* metrics of one process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "roi_worker_messages",
            "Messages processed, by outcome (worker.types.Outcome): inserted (new event "
            "stored), duplicate (already stored, nothing written), conflict (event_id stored "
            "with other content; dead-lettered), refused (valid, but a database constraint "
            "refused the row; dead-lettered), expired (older than the retention horizon; not "
            "stored), invalid (not an event of the contract, or unreadable; dead-lettered).",
            ["outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "roi_worker_dead_letters",
            "Messages published to the dead-letter topic, by reason (roi.error.reason).",
            ["reason"],
            registry=registry,
        )
        self.batch_duration = Histogram(
            "roi_worker_batch_duration_seconds",
            "Time to validate, store and commit one batch.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "roi_worker_batch_size",
            "Messages per batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "roi_worker_consumer_lag",
            "Messages in the partition not yet stored (end offset minus stored offset); "
            "0 when caught up.",
            ["topic", "partition"],
            registry=registry,
        )
        self.consumer_lag_stale = Gauge(
            "roi_worker_consumer_lag_stale",
            "1 while roi_worker_consumer_lag could not be refreshed (the broker's end offsets "
            "unreadable, or a partition's stored offset unknown): its values are the last known.",
            registry=registry,
        )
        self.partition_stored = Gauge(
            "roi_worker_partition_last_stored_timestamp_seconds",
            "Unix time a batch of the partition was last stored, by any replica (read from the "
            "database when it is assigned, so restarts and rebalances keep it); its assignment "
            "time if it was never stored. Present for every assigned partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.stalled_partitions = Gauge(
            "roi_worker_stalled_partitions",
            "Owned partitions with lag that stored nothing for ROI_STALL_SECONDS.",
            registry=registry,
        )
        self.event_delay = BatchHistogram(
            "roi_worker_event_delay_seconds",
            "Time from executed_at to being stored, per inserted event.",
            buckets=DELAY_BUCKETS,
            registry=registry,
        )
        self.last_commit = Gauge(
            "roi_worker_last_commit_timestamp_seconds",
            "Unix time of the last batch committed to the database.",
            registry=registry,
        )
        self.db_errors = Counter(
            "roi_worker_db_errors",
            "PostgreSQL errors: unreachable, connection lost, summaries unreadable for /metrics.",
            registry=registry,
        )
        self.kafka_errors = Counter(
            "roi_worker_kafka_errors",
            "Kafka errors: dead letters not acknowledged, failed commits and offset lookups "
            "(not commits a rebalance refused: roi_worker_rebalances_total counts those).",
            registry=registry,
        )
        self.circuit_open = Gauge(
            "roi_worker_circuit_open",
            "1 for a partition whose invalid messages opened the circuit breaker: the worker "
            "stopped consuming and holds its partitions paused until restarted "
            "(docs/operations.md, 'Circuit breaker').",
            ["topic", "partition"],
            registry=registry,
        )
        self.circuit_ratio = Gauge(
            "roi_worker_circuit_open_ratio",
            "The share of invalid messages in the window that opened the circuit breaker "
            "(0 while it is closed); it opens above ROI_DLQ_MAX_RATIO.",
            registry=registry,
        )
        self.rebalances = Counter(
            "roi_worker_rebalances",
            "Partitions the group assigned to or revoked from this worker, by kind (assigned, "
            "revoked): a rollout or a scale change makes a few; a steady rise means members keep "
            "leaving the group.",
            ["kind"],
            registry=registry,
        )
        for kind in REBALANCE_KINDS:
            self.rebalances.labels(kind)
        self.ready = Gauge(
            "roi_worker_ready",
            "1 when the worker can store events (as /readyz says); 0 while starting, during an "
            "outage of the database, the broker or the dead-letter topic, while a partition is "
            "stuck, and when stopping.",
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.messages.labels(outcome)
        for reason in InvalidReason:
            self.dead_letters.labels(reason.value)


class BatchHistogram(Collector):
    """A histogram fed a batch of observations at a time, served as prometheus_client's
    Histogram serves one fed value by value (the same buckets, count and sum, to the last bit).

    Histogram.observe walks the buckets in Python and takes a lock for each value: for the
    event delays, thousands a batch on the store thread, whose time the consuming loop waits
    out (the GIL). Here a batch costs one sort and a bisection per bucket.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = [float(bound) for bound in buckets]
        if bounds != sorted(bounds):
            raise ValueError("buckets not in sorted order")
        if bounds[-1] != INF:
            bounds.append(INF)  # as Histogram does: the last bucket counts every value
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(bounds)
        # The `le` labels, written as Histogram writes them ("1.0", "+Inf").
        self._le: tuple[str, ...] = tuple(
            floatToGoString(bound)  # type: ignore[no-untyped-call]
            for bound in bounds
        )
        self._lock = threading.Lock()  # the store thread observes, scrapes read
        self._cumulative = [0.0] * len(bounds)  # values <= each bound, as floats like Histogram's
        self._sum = 0.0
        registry.register(self)

    def observe_batch(self, values: Sequence[float]) -> None:
        """Observes each of `values`, as many Histogram.observe calls in that order would."""
        if not values:
            return
        ordered = sorted(values)
        counts = [bisect.bisect_right(ordered, bound) for bound in self._bounds]
        with self._lock:
            # One addition per value in the given order, as Histogram's sum adds them: a float
            # total added once would round differently.
            self._sum = functools.reduce(operator.add, values, self._sum)
            for index, count in enumerate(counts):
                self._cumulative[index] += count

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cumulative, total = list(self._cumulative), self._sum
        buckets = list(zip(self._le, cumulative, strict=True))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=total
        )


class RatingsPublisherMetrics:
    """The ratings publisher's metrics (worker.consume.ratings_publisher), on every replica."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.active = Gauge(
            "roi_rating_publisher_active",
            "1 while this replica holds the ratings publisher's advisory lock and publishes "
            "rating transitions to ROI_RATINGS_TOPIC; exactly one replica shows 1.",
            registry=registry,
        )
        self.unsent = Gauge(
            "roi_rating_transitions_unsent",
            "Rating transitions recorded in the database and not yet acknowledged by the "
            "broker (read from the database every few seconds: the same on every replica).",
            registry=registry,
        )
        self.oldest_unsent = Gauge(
            "roi_rating_transitions_oldest_unsent_seconds",
            "Age of the oldest rating transition not yet acknowledged by the broker; 0 when "
            "none waits.",
            registry=registry,
        )
        self.published = Counter(
            "roi_rating_transitions_published",
            "Rating transitions this replica published and the broker acknowledged (a re-send "
            "after a crash counts again).",
            registry=registry,
        )


# The busiest patterns, and the totals over all of them, from one snapshot: the totals row
# (pattern_id NULL, no window figures) first. Each pattern row ends with its executions and
# successes in each of WINDOWS, from the daily rollups: %(since_N)s is the first day of the Nth.
_WINDOW_SUMS: Final = [
    f"coalesce(sum({column}) FILTER (WHERE day >= %(since_{n})s), 0)"
    for n in range(len(WINDOWS))
    for column in ("total_executions", "successful_executions")
]
_QUERY: Final = f"""
WITH top AS (
    SELECT pattern_id, {", ".join(SUMS)}
    FROM pattern_roi_summary
    ORDER BY total_executions DESC, pattern_id
    LIMIT %(limit)s
), recent AS (
    SELECT pattern_id, {", ".join(f"{sum_} AS w{n}" for n, sum_ in enumerate(_WINDOW_SUMS))}
    FROM pattern_roi_daily
    WHERE day >= %(since)s AND day <= %(today)s AND pattern_id IN (SELECT pattern_id FROM top)
    GROUP BY pattern_id
)
(SELECT NULL::text, {", ".join(f"coalesce(sum({column}), 0)" for column in SUMS)},
        {", ".join("NULL::numeric" for _ in _WINDOW_SUMS)}
 FROM pattern_roi_summary)
UNION ALL
(SELECT pattern_id, {", ".join(SUMS)},
        {", ".join(f"coalesce(w{n}, 0)" for n in range(len(_WINDOW_SUMS)))}
 FROM top LEFT JOIN recent USING (pattern_id))
ORDER BY 1 NULLS FIRST
"""


def _query_params(max_patterns: int, today: date) -> dict[str, Any]:
    """The parameters of _QUERY: the first day of each of WINDOWS, as `roi-worker report
    --since` takes them (worker.roi.methodology.Window), the earliest of them, and today (UTC)."""
    starts = [Window.parse(since, today).since for since in WINDOWS.values()]
    return {
        "limit": max_patterns,
        "today": today,
        "since": min(day for day in starts if day is not None),
        **{f"since_{n}": day for n, day in enumerate(starts)},
    }


class PatternCollector(Collector):
    """roi_pattern_* and roi_* totals, read from pattern_roi_summary (all time) and
    pattern_roi_daily (the windows of WINDOWS) at scrape time.

    Exports at most `max_patterns` patterns, the busiest over all time first, to bound label
    cardinality; the totals cover every pattern. When the database cannot be read, these
    families are left out of the scrape (and roi_worker_db_errors_total counts it) rather than
    reporting zeros.
    """

    def __init__(
        self, database_url: str, max_patterns: int, errors: Counter, min_executions: int
    ) -> None:
        self._url = database_url
        self._max_patterns = max_patterns
        self._min_executions = min_executions
        self._errors = errors
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._cache: tuple[float, list[Metric]] = (0.0, [])

    def collect(self) -> Iterator[Metric]:
        # Scrapes that arrive while one is reading the database wait briefly, then answer
        # without these families rather than piling up threads behind a slow query.
        if not self._lock.acquire(timeout=LOCK_WAIT_SECONDS):
            return
        try:
            at, metrics = self._cache
            if time.monotonic() - at > PATTERN_CACHE_SECONDS:
                metrics = self._read()
                self._cache = (time.monotonic(), metrics) if metrics else (0.0, [])
        finally:
            self._lock.release()
        yield from metrics

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _read(self) -> list[Metric]:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self._url, autocommit=True, **WORKER_SESSION)
            now = datetime.now(UTC)
            params = _query_params(self._max_patterns, now.date())
            totals, *patterns = self._conn.execute(_QUERY, params).fetchall()
            with self._conn.cursor() as cur:
                month_to_date = read_month_to_date(cur, now)
        except (psycopg.Error, RetryableError) as exc:
            self._errors.inc()
            log.warning("cannot read pattern summaries for /metrics: %s", _reason(exc))
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return []
        width = 1 + len(SUMS)
        named = [(str(row[0]), totals_from_row(row[1:width])) for row in patterns]
        windows = [(str(row[0]), _window_totals(row[width:])) for row in patterns]
        return [
            *_pattern_families(named, self._min_executions),
            *_window_families(windows),
            *_total_families(totals_from_row(totals[1:width])),
            *_month_to_date_families(month_to_date),
        ]


def _window_totals(counts: Sequence[Any]) -> dict[str, Totals]:
    """Window label -> its executions and successes, from the pairs the query selects."""
    return {
        window: Totals(executions=int(counts[2 * n]), successful_executions=int(counts[2 * n + 1]))
        for n, window in enumerate(WINDOWS)
    }


def _pattern_families(patterns: list[tuple[str, Totals]], min_executions: int) -> list[Metric]:
    executions = CounterMetricFamily(
        "roi_pattern_executions", "Executions stored, per pattern.", labels=["pattern_id"]
    )
    successes = CounterMetricFamily(
        "roi_pattern_successful_executions",
        "Successful executions stored, per pattern.",
        labels=["pattern_id"],
    )
    negative_savings = CounterMetricFamily(
        "roi_pattern_negative_savings_executions",
        "Successful executions that took longer or cost more than estimated, per pattern.",
        labels=["pattern_id"],
    )
    cost_anomalies = CounterMetricFamily(
        "roi_pattern_cost_anomaly_executions",
        f"Executions whose actual cost exceeded {COST_ANOMALY_FACTOR}x the estimate, per pattern.",
        labels=["pattern_id"],
    )
    success_ratio = GaugeMetricFamily(
        "roi_pattern_success_ratio", "Successful / all executions (0..1).", labels=["pattern_id"]
    )
    cost_saved = GaugeMetricFamily(
        "roi_pattern_cost_saved_usd",
        "Net USD saved (estimated minus actual cost; failed runs count their cost as lost).",
        labels=["pattern_id"],
    )
    time_saved = GaugeMetricFamily(
        "roi_pattern_time_saved_seconds",
        "Net seconds saved (estimated minus actual time; failed runs count their time as lost).",
        labels=["pattern_id"],
    )
    roi_ratio = GaugeMetricFamily(
        "roi_pattern_roi_ratio",
        "Net cost saved / actual cost spent (2.0 = 200 %); absent while nothing was spent.",
        labels=["pattern_id"],
    )
    by_outcome = CounterMetricFamily(
        "roi_pattern_executions_by_outcome",
        "Executions stored, per pattern and outcome (success, failure, partial_success, error; "
        "an event without one counts as success or failure by its success flag).",
        labels=["pattern_id", "outcome"],
    )
    quality = GaugeMetricFamily(
        "roi_pattern_quality_score_mean",
        "Mean quality_score (0..1) of the executions that carry one; absent while none does.",
        labels=["pattern_id"],
    )
    tokens_saved = GaugeMetricFamily(
        # A gauge despite the suffix (the name was published first): net, it may fall.
        "roi_pattern_tokens_saved_total",
        "Net LLM tokens saved (baseline_tokens - actual_tokens, over executions that give "
        "both); negative when runs used more than their baseline.",
        labels=["pattern_id"],
    )
    effectiveness = GaugeMetricFamily(
        "roi_pattern_effectiveness",
        "1 for the pattern's current rating, 0 for the others (docs/roi-methodology.md).",
        labels=["pattern_id", "rating"],
    )
    for pattern_id, totals in patterns:
        labels = [pattern_id]
        executions.add_metric(labels, totals.executions)
        successes.add_metric(labels, totals.successful_executions)
        negative_savings.add_metric(labels, totals.negative_savings_executions)
        cost_anomalies.add_metric(labels, totals.cost_anomaly_executions)
        success_ratio.add_metric(labels, float(totals.success_rate or 0))
        cost_saved.add_metric(labels, float(totals.cost_saved_usd))
        time_saved.add_metric(labels, float(totals.time_saved_seconds))
        roi = totals.roi_percentage
        if roi is not None:
            roi_ratio.add_metric(labels, float(roi / 100))
        for outcome, count in totals.executions_by_outcome.items():
            by_outcome.add_metric([pattern_id, outcome], count)
        mean = totals.quality_score_mean
        if mean is not None:
            quality.add_metric(labels, float(mean))
        tokens_saved.add_metric(labels, totals.tokens_saved)
        current = rate(totals, min_executions)
        for rating in Rating:
            effectiveness.add_metric([pattern_id, rating.value], float(rating is current))
    return [
        executions,
        successes,
        negative_savings,
        cost_anomalies,
        success_ratio,
        cost_saved,
        time_saved,
        roi_ratio,
        by_outcome,
        quality,
        tokens_saved,
        effectiveness,
    ]


def _window_families(patterns: list[tuple[str, dict[str, Totals]]]) -> list[Metric]:
    windows = "window 24h: today and yesterday; 7d: today and the 6 days before (UTC days)"
    executions = GaugeMetricFamily(
        "roi_pattern_window_executions",
        f"Executions per pattern in the window ({windows}).",
        labels=["pattern_id", "window"],
    )
    successes = GaugeMetricFamily(
        "roi_pattern_window_successful_executions",
        f"Successful executions per pattern in the window ({windows}).",
        labels=["pattern_id", "window"],
    )
    success_ratio = GaugeMetricFamily(
        "roi_pattern_window_success_ratio",
        f"Successful / all executions per pattern in the window, 0..1 ({windows}); absent "
        "while the window holds no execution.",
        labels=["pattern_id", "window"],
    )
    for pattern_id, windows_of_pattern in patterns:
        for window, totals in windows_of_pattern.items():
            labels = [pattern_id, window]
            executions.add_metric(labels, totals.executions)
            successes.add_metric(labels, totals.successful_executions)
            if totals.success_rate is not None:
                success_ratio.add_metric(labels, float(totals.success_rate))
    return [executions, successes, success_ratio]


def _total_families(totals: Totals) -> list[Metric]:
    families: list[Metric] = [
        GaugeMetricFamily(
            "roi_cost_saved_usd",
            "Net USD saved by all patterns.",
            value=float(totals.cost_saved_usd),
        ),
        GaugeMetricFamily(
            "roi_time_saved_seconds",
            "Net seconds saved by all patterns.",
            value=float(totals.time_saved_seconds),
        ),
    ]
    if totals.success_rate is not None:
        families.append(
            GaugeMetricFamily(
                "roi_success_ratio",
                "Successful / all executions over every pattern (per execution, not per pattern).",
                value=float(totals.success_rate),
            )
        )
    return families


def _month_to_date_families(mtd: MonthToDate) -> list[Metric]:
    """Month to date and its projections (docs/roi-methodology.md, "Month to date")."""
    return [
        GaugeMetricFamily(name, help_, value=float(value))
        for name, help_, value in (
            (
                "roi_cost_saved_month_to_date_usd",
                "Net USD saved by all patterns since the start of this UTC calendar month.",
                mtd.cost_saved_usd,
            ),
            (
                "roi_cost_saved_previous_month_to_date_usd",
                "Net USD saved by all patterns in the same elapsed span of the previous month.",
                mtd.previous_cost_saved_usd,
            ),
            (
                "roi_cost_saved_projected_month_end_usd",
                "Month to date / elapsed days (at least 1) * days in the month.",
                mtd.projected_month_end_usd,
            ),
            (
                "roi_cost_saved_projected_annual_usd",
                "Net USD saved in the trailing 30 days / 30 * 365.",
                mtd.projected_annual_usd,
            ),
        )
    ]


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RetryableError) else first_line(exc)
