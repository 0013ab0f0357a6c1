"""Each summary figure's one name, and the older names it is published under elsewhere.

A figure has one name in worker.roi.methodology.Totals, in the report document
(schemas/roi-report.v1.json) and in the API's bodies (the same models, schemas/roi-api.v1.json).
The summary tables' columns (migrations/) and the metric names (docs/metrics.md) were published
first, and a published name does not change: where they differ, this table is the one place
that says which is which. The report builds its figures from it (worker.roi.report_document),
the summary reads fill Totals by it (worker.roi.analytics), and tests/unit/roi/test_figure_names.py
fails when a summary column, a Totals field or a report figure has no entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure: its name; its column in pattern_roi_summary and pattern_roi_daily, or None
    when it is derived from the stored ones (then the report rounds it); and the per-pattern
    metric that exports it, if any."""

    name: str
    column: str | None
    metric: str | None = None

    @property
    def stored(self) -> bool:
        """A count or an exact sum kept in the summary tables, not derived from them."""
        return self.column is not None


# In the report's order (docs/reports.md).
FIGURES: Final = (
    Figure("executions", "total_executions", "roi_pattern_executions"),
    Figure("successful_executions", "successful_executions", "roi_pattern_successful_executions"),
    Figure("success_rate", None, "roi_pattern_success_ratio"),  # the same fraction, 0..1
    Figure("time_saved_seconds", "total_time_saved_seconds", "roi_pattern_time_saved_seconds"),
    Figure("cost_saved_usd", "total_cost_saved_usd", "roi_pattern_cost_saved_usd"),
    Figure("investment_usd", "total_actual_cost_usd"),  # the sum of actual_cost
    Figure("estimated_cost_usd", "total_estimated_cost_usd"),
    Figure("execution_time_seconds", "total_execution_time_seconds"),
    Figure("estimated_time_seconds", "total_estimated_time_seconds"),
    Figure("average_time_saved_seconds", None),
    Figure("average_cost_saved_usd", None),
    Figure("roi_percentage", None, "roi_pattern_roi_ratio"),  # the metric is percentage / 100
    Figure(
        "negative_savings_executions",
        "negative_savings_executions",
        "roi_pattern_negative_savings_executions",
    ),
    Figure(
        "cost_anomaly_executions", "cost_anomaly_executions", "roi_pattern_cost_anomaly_executions"
    ),
    # One metric for the four outcomes, by its `outcome` label.
    *(
        Figure(name, name, "roi_pattern_executions_by_outcome")
        for name in (
            "outcome_success_executions",
            "outcome_failure_executions",
            "outcome_partial_success_executions",
            "outcome_error_executions",
        )
    ),
    Figure("quality_scored_executions", "quality_scored_executions"),
    Figure("quality_score_sum", "total_quality_score"),
    Figure("quality_score_mean", None, "roi_pattern_quality_score_mean"),
    Figure("token_measured_executions", "token_measured_executions"),
    Figure("tokens_saved", "total_tokens_saved", "roi_pattern_tokens_saved_total"),
)

# Summary column -> the name of the figure it stores (the Totals field it fills).
NAME_OF_COLUMN: Final = {f.column: f.name for f in FIGURES if f.column is not None}
