"""docs/roi-methodology.md: each worked example's numbers, recomputed by worker.roi.methodology."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

from worker.roi.formatting import TENTH, fraction_as_percent, number, percent, usd
from worker.roi.methodology import (
    RATING_RULES,
    DailyCount,
    Rating,
    Totals,
    Window,
    rate,
    success_rate_change,
    trend,
    wilson_lower_bound,
)

DOC = Path(__file__).parents[3] / "docs" / "roi-methodology.md"


def tables(heading: str) -> list[list[dict[str, str]]]:
    """The Markdown tables of the section under `### heading`, as rows of column -> cell."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^### {re.escape(heading)}\n(.*?)(?=^#)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no section '### {heading}' in {DOC.name}"
    found: list[list[dict[str, str]]] = []
    block: list[list[str]] = []
    for line in [*match[1].splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip("|").split("|")])
        elif block:
            header, _rule, *rows = block
            found.append([dict(zip(header, row, strict=True)) for row in rows])
            block = []
    assert found, f"no table under '### {heading}'"
    return found


def dec(cell: str) -> Decimal:
    return Decimal(cell.replace(",", "").replace("$", "").replace("+", "").split()[0])


def shown_roi(totals: Totals) -> str:
    return percent(totals.roi_percentage)


def test_execution_examples_follow_the_per_execution_rules() -> None:
    """Time and cost saved, and both flags, of each example execution."""
    (rows,) = tables("Worked example: executions")
    for row in rows:
        run = Totals.of_execution(
            success=row["success"] == "true",
            execution_time_seconds=dec(row["execution time"]),
            estimated_time_seconds=dec(row["estimated time"]),
            actual_cost=dec(row["actual cost"]),
            estimated_cost=dec(row["estimated cost"]),
        )
        assert run.time_saved_seconds == dec(row["time saved"]), row
        assert run.cost_saved_usd == dec(row["cost saved"]), row
        flags = [
            name
            for name, count in (
                ("negative savings", run.negative_savings_executions),
                ("cost anomaly", run.cost_anomaly_executions),
            )
            if count
        ]
        assert (", ".join(flags) or "none") == row["flags"], row


def test_pattern_examples_derive_rates_averages_and_roi() -> None:
    """Success rate, averages and ROI of each example pattern; no investment shows n/a."""
    (rows,) = tables("Worked example: a pattern")
    for row in rows:
        totals = Totals(
            executions=int(row["executions"]),
            successful_executions=int(row["successes"]),
            time_saved_seconds=dec(row["time saved"]),
            cost_saved_usd=dec(row["cost saved"]),
            investment_usd=dec(row["investment"]),
        )
        assert fraction_as_percent(totals.success_rate) == row["success rate"]
        assert totals.average_time_saved_seconds is not None
        assert totals.average_cost_saved_usd is not None
        assert number(totals.average_time_saved_seconds, TENTH) == row["average time saved"]
        assert usd(totals.average_cost_saved_usd) == row["average cost saved"]
        assert shown_roi(totals) == row["ROI"]


def test_rating_examples_get_their_rating() -> None:
    """Each example pattern's rate, ROI and rating, boundaries included."""
    (rows,) = tables("Worked example: ratings")
    assert {Rating(row["rating"]) for row in rows} == set(Rating)
    for row in rows:
        totals = Totals(
            executions=int(row["executions"]),
            successful_executions=int(row["successes"]),
            cost_saved_usd=dec(row["cost saved"]),
            investment_usd=dec(row["investment"]),
        )
        assert fraction_as_percent(totals.success_rate) == row["success rate"], row
        assert shown_roi(totals) == row["ROI"], row
        assert rate(totals).value == row["rating"], row


def test_rating_table_states_the_rules_and_recommendations_in_code() -> None:
    """The rules table shows the thresholds and the recommendation of every rating."""
    text = DOC.read_text(encoding="utf-8")
    for rule in RATING_RULES:
        rate_, roi = rule.min_success_rate, rule.min_roi_percentage
        assert f"| `{rule.rating}` | success rate ≥ {rate_} and ROI ≥ {roi} % |" in text
    for rating in Rating:
        assert f"| {rating.recommendation} |" in text


def test_confidence_examples_are_wilson_lower_bounds() -> None:
    """The Wilson 95 % lower bound of each example, to the displayed tenth of a percent."""
    (rows,) = tables("Worked example: confidence")
    for row in rows:
        successes, executions = int(row["successes"]), int(row["executions"])
        rate_ = Decimal(successes) / executions
        assert fraction_as_percent(rate_) == row["success rate"]
        bound = wilson_lower_bound(successes, executions)
        assert fraction_as_percent(bound) == row["Wilson lower bound"], row


def test_window_examples_are_whole_utc_days_with_a_previous_window() -> None:
    """Each --since example's window and the previous window of the same length."""
    (rows,) = tables("Worked example: windows")
    for row in rows:
        window = Window.parse(row["since"], date.fromisoformat(row["today"]))
        previous = window.previous
        assert previous is not None
        assert row["window"] == f"{window.since} to now"
        assert row["previous window"] == f"{previous.since} to {previous.until}"


def test_trend_examples_have_their_change_margin_and_trend() -> None:
    """The fitted change, its margin and the trend of each example pattern's days."""
    days_table, results = tables("Worked example: trend")
    days: dict[str, list[DailyCount]] = {}
    for row in days_table:
        count = DailyCount(
            date.fromisoformat(row["day"]), int(row["executions"]), int(row["successes"])
        )
        days.setdefault(row["pattern"], []).append(count)
    assert len(results) == len(days)
    for row in results:
        fitted = success_rate_change(days[row["pattern"]])
        assert fitted is not None
        assert f"{number(100 * fitted.change, TENTH)} pp" == row["change"].lstrip("+")
        assert f"{number(100 * fitted.margin, TENTH)} pp" == row["margin"]
        assert trend(days[row["pattern"]]).value == row["trend"]


def test_overall_example_is_a_rate_per_execution() -> None:
    """The overall average success rate adds executions up; it is not a mean of patterns."""
    (rows,) = tables("Worked example: overall")
    overall = sum(
        (
            Totals(executions=int(r["executions"]), successful_executions=int(r["successes"]))
            for r in rows
        ),
        Totals(),
    )
    text = DOC.read_text(encoding="utf-8")
    shown = fraction_as_percent(overall.success_rate)
    assert f"= {overall.successful_executions} / {overall.executions} = {shown}" in text


def test_outcome_quality_and_token_example() -> None:
    """Outcome counts, the mean quality score with its count and the tokens saved of the example
    executions."""
    runs, figures = tables("Worked example: outcomes, quality and tokens")

    def given(cell: str) -> str | None:
        return None if cell == "(absent)" else cell

    totals = sum(
        (
            Totals.of_execution(
                success=row["success"] == "true",
                execution_time_seconds=Decimal(1),
                estimated_time_seconds=Decimal(2),
                actual_cost=Decimal(1),
                estimated_cost=Decimal(2),
                outcome=given(row["outcome"]),  # type: ignore[arg-type]
                quality_score=None if (q := given(row["quality_score"])) is None else dec(q),
                actual_tokens=None if (a := given(row["actual_tokens"])) is None else int(a),
                baseline_tokens=None if (b := given(row["baseline_tokens"])) is None else int(b),
            )
            for row in runs
        ),
        Totals(),
    )
    shown = {row["figure"]: row["value"] for row in figures}
    outcomes = ", ".join(f"{n} {o}" for o, n in totals.executions_by_outcome.items())
    assert shown["outcomes"] == outcomes
    assert totals.quality_score_mean is not None
    assert shown["quality"] == (
        f"mean {number(totals.quality_score_mean, TENTH)} over "
        f"{totals.quality_scored_executions} scored executions"
    )
    assert shown["tokens saved"] == (
        f"{totals.tokens_saved:,} over {totals.token_measured_executions} executions"
    )
