"""Each summary figure has one name from SQL to report to API, or an entry in worker.roi.figures
saying which published name is which.

Adding a summary column (a migration and SUMS), a Totals field or a report figure without its
entry in FIGURES fails here; so does an entry naming something that is not there.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from worker.roi.figures import FIGURES, NAME_OF_COLUMN
from worker.roi.methodology import Totals
from worker.roi.report_document import Change, Figures, Overall, PatternReport
from worker.roi.summaries import ARCHIVE, DAILY, SPANS, SUMMARY, SUMS, Table

ROOT = Path(__file__).parents[3]
NAMES = [figure.name for figure in FIGURES]
STORED = [figure.name for figure in FIGURES if figure.stored]
DERIVED = [figure.name for figure in FIGURES if not figure.stored]

# The report's fields beside the summary figures, and where each comes from. Anything else added
# to a pattern's or the overall entry is a figure: give it its entry in FIGURES.
PATTERN_FIELDS_BESIDES_FIGURES = {
    "pattern_id",
    "rating",  # worker.roi.methodology.rate
    "recommendation",
    "wilson_lower_bound",  # from successful_executions and executions
    "trend",  # from the daily summary rows
    "success_rate_change",
    "success_rate_change_margin",
    "quality_trend",  # the same, of the daily mean quality score
    "quality_score_change",
    "quality_score_change_margin",
    "execution_time_percentiles",  # from the executions, not the summaries
    *SPANS,  # first_executed_at, last_executed_at: the summary's columns, under the same name
    "previous",  # the figures of the previous window
    "change",
}
OVERALL_FIELDS_BESIDES_FIGURES = {"patterns", "previous", "change"}


def test_names_are_unique() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert len(NAME_OF_COLUMN) == len(STORED)


def test_every_summary_column_in_sums_is_a_figure() -> None:
    """SUMS, the columns the worker keeps, are exactly the stored figures' columns."""
    assert set(SUMS) == set(NAME_OF_COLUMN)


def _columns(table: str) -> set[str]:
    """The columns of `table` as the migrations leave it (CREATE TABLE, then ADD/DROP COLUMN)."""
    columns: set[str] = set()
    for path in sorted((ROOT / "migrations").glob("*.sql")):
        sql = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
        for body in re.findall(rf"CREATE TABLE {table} \((.*?)\n\);", sql, re.DOTALL):
            columns |= set(re.findall(r"^    ([a-z_]+) +[a-z]", body, re.MULTILINE))
        for alter in re.findall(rf"ALTER TABLE {table}\b(.*?);", sql, re.DOTALL):
            columns |= set(re.findall(r"ADD COLUMN (?:IF NOT EXISTS )?([a-z_]+)", alter))
            columns -= set(re.findall(r"DROP COLUMN (?:IF EXISTS )?([a-z_]+)", alter))
    return columns - {"last_updated"}


@pytest.mark.parametrize("table", [SUMMARY, DAILY, ARCHIVE], ids=lambda t: t.name)
def test_every_column_of_the_summary_tables_is_a_figure(table: Table) -> None:
    """A column a migration adds to a summary table is a figure too (or a key or a span)."""
    assert _columns(table.name) == set(table.columns)
    assert set(table.columns) - set(table.keys) - set(SPANS) == set(NAME_OF_COLUMN)


def test_the_column_reader_sees_the_migrations() -> None:
    assert {"pattern_id", "total_executions", "cost_anomaly_executions"} <= _columns(SUMMARY.name)
    assert "negative_savings_executions" in _columns(DAILY.name)  # added by 0003's ALTER TABLE


def test_every_totals_field_is_a_stored_figure_of_the_same_name() -> None:
    assert [f.name for f in fields(Totals)] == STORED


def test_every_derived_figure_is_a_totals_property_of_the_same_name() -> None:
    missing = [name for name in DERIVED if not isinstance(getattr(Totals, name, None), property)]
    assert missing == []


def test_the_report_shows_every_figure_under_its_name() -> None:
    """The report's figures, in its order; a pattern's and the overall entry hold them and
    nothing else but the fields listed above."""
    assert list(Figures.model_fields) == NAMES
    assert set(PatternReport.model_fields) - set(NAMES) == PATTERN_FIELDS_BESIDES_FIGURES
    assert set(Overall.model_fields) - set(NAMES) == OVERALL_FIELDS_BESIDES_FIGURES
    assert set(Change.model_fields) <= set(NAMES)


@pytest.mark.parametrize(
    ("schema_file", "models"),
    [
        ("roi-report.v1.json", ("Figures", "Overall", "PatternReport")),
        ("roi-api.v1.json", ("Figures", "Overall", "PatternReport", "PatternSummary")),
    ],
)
def test_the_published_schemas_name_every_figure_as_the_table_does(
    schema_file: str, models: tuple[str, ...]
) -> None:
    """schemas/ as published: the report's and the API's bodies carry the figures by name."""
    document = json.loads((ROOT / "schemas" / schema_file).read_text(encoding="utf-8"))
    defined = document.get("$defs") or document["components"]["schemas"]
    for model in models:
        missing = [name for name in NAMES if name not in defined[model]["properties"]]
        assert missing == [], f"{schema_file}: {model}"


def test_every_metric_named_is_documented() -> None:
    """The per-pattern metric of each figure that has one is in docs/metrics.md."""
    documented = set(
        re.findall(r"^\| `(roi_[a-z_]+)` \|", (ROOT / "docs" / "metrics.md").read_text(), re.M)
    )
    named = {figure.metric for figure in FIGURES if figure.metric is not None}
    assert named
    assert {m for m in named if m not in documented and f"{m}_total" not in documented} == set()
