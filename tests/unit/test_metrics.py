"""The per-pattern families of worker.metrics, from Totals, without a database."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from worker.metrics import _pattern_families
from worker.roi.methodology import Totals

SCORED = Totals(
    executions=6,
    successful_executions=4,
    outcome_success_executions=3,
    outcome_partial_success_executions=1,
    outcome_failure_executions=0,
    outcome_error_executions=2,
    quality_scored_executions=4,
    quality_score_sum=Decimal("3.4"),
    token_measured_executions=2,
    tokens_saved=-150,
)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def registry(*patterns: tuple[str, Totals]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_Fixed(_pattern_families(list(patterns), min_executions=10)))
    return registry


def test_outcomes_quality_and_tokens_are_exported_per_pattern() -> None:
    """Every outcome has its sample (0 included), the quality mean is sum / count, and the
    tokens saved are net (negative here)."""
    read = registry(("p", SCORED)).get_sample_value
    by_outcome = {
        outcome: read(
            "roi_pattern_executions_by_outcome_total", {"pattern_id": "p", "outcome": outcome}
        )
        for outcome in ("success", "failure", "partial_success", "error")
    }
    assert by_outcome == {"success": 3, "failure": 0, "partial_success": 1, "error": 2}
    assert read("roi_pattern_quality_score_mean", {"pattern_id": "p"}) == 0.85
    assert read("roi_pattern_tokens_saved_total", {"pattern_id": "p"}) == -150


def test_a_pattern_without_scores_has_no_quality_mean() -> None:
    """No scored execution: the quality gauge is absent (not 0), tokens saved is 0."""
    read = registry(("q", Totals(executions=1, outcome_success_executions=1))).get_sample_value
    assert read("roi_pattern_quality_score_mean", {"pattern_id": "q"}) is None
    assert read("roi_pattern_tokens_saved_total", {"pattern_id": "q"}) == 0
