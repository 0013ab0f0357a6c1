"""worker.roi.methodology: totals, ratings, the Wilson bound, trends, windows, ranking."""

from __future__ import annotations

import re
from dataclasses import fields, replace
from datetime import date, timedelta
from decimal import Decimal, localcontext
from statistics import NormalDist
from typing import Any

import pytest

from worker.roi.analytics import totals_from_row
from worker.roi.figures import NAME_OF_COLUMN
from worker.roi.methodology import (
    DEFAULT_MIN_EXECUTIONS,
    PERFORMING,
    RATING_RULES,
    UNDERPERFORMING,
    WILSON_Z,
    DailyCount,
    DailyQuality,
    RateChange,
    Rating,
    Totals,
    Trend,
    Window,
    quality_change,
    quality_trend,
    ranking_key,
    rate,
    shortfall_key,
    success_rate_change,
    trend,
    wilson_lower_bound,
)
from worker.roi.summaries import SUMS

D = Decimal


def totals(executions: int, successes: int, saved: str = "0", spent: str = "0") -> Totals:
    """Totals with only what a rating looks at: counts, net cost saved and the investment."""
    return Totals(
        executions=executions,
        successful_executions=successes,
        cost_saved_usd=D(saved),
        investment_usd=D(spent),
    )


# --------------------------------------------------------------------------- Totals


def test_adding_totals_adds_every_field() -> None:
    """`a + b` sums each of the eighteen fields, none left out."""
    a = Totals(1, 2, D("3.5"), D("4.25"), D(5), D(6), D(7), D(8), 9, 10, 11, 12, 13, 14, 15)
    a = replace(a, quality_score_sum=D("1.5"), token_measured_executions=17, tokens_saved=-18)
    b = Totals(100, 200, D("-300"), D("400.75"), D(500), D(600), D(700), D(800), 900, 1000)
    b = replace(b, outcome_success_executions=1100, outcome_failure_executions=1200)
    b = replace(b, outcome_partial_success_executions=1300, outcome_error_executions=1400)
    b = replace(b, quality_scored_executions=1500, quality_score_sum=D("0.25"))
    b = replace(b, token_measured_executions=1700, tokens_saved=1800)
    assert a + b == Totals(
        *(101, 202, D("-296.5"), D("405.00"), D(505), D(606), D(707), D(808), 909, 1010),
        *(1111, 1212, 1313, 1414, 1515, D("1.75"), 1717, 1782),
    )
    assert len(fields(Totals)) == 18
    assert a + Totals() == a


def test_a_successful_execution_saves_the_difference_to_its_estimates() -> None:
    """Success: time and cost saved are estimate minus actual, and nothing is flagged."""
    one = Totals.of_execution(
        success=True,
        execution_time_seconds=D(30),
        estimated_time_seconds=D(100),
        actual_cost=D("0.50"),
        estimated_cost=D("2.00"),
    )
    assert one == Totals(
        executions=1,
        successful_executions=1,
        time_saved_seconds=D(70),
        cost_saved_usd=D("1.50"),
        investment_usd=D("0.50"),
        estimated_cost_usd=D("2.00"),
        execution_time_seconds=D(30),
        estimated_time_seconds=D(100),
        negative_savings_executions=0,
        cost_anomaly_executions=0,
        outcome_success_executions=1,
    )


def test_a_failed_execution_loses_its_own_time_and_cost() -> None:
    """Failure: time saved is -execution time, cost saved -actual cost; not negative savings."""
    one = Totals.of_execution(
        success=False,
        execution_time_seconds=D(30),
        estimated_time_seconds=D(100),
        actual_cost=D("0.50"),
        estimated_cost=D("2.00"),
    )
    assert one == Totals(
        executions=1,
        successful_executions=0,
        time_saved_seconds=D(-30),
        cost_saved_usd=D("-0.50"),
        investment_usd=D("0.50"),
        estimated_cost_usd=D("2.00"),
        execution_time_seconds=D(30),
        estimated_time_seconds=D(100),
        negative_savings_executions=0,
        cost_anomaly_executions=0,
        outcome_failure_executions=1,
    )


@pytest.mark.parametrize(
    ("success", "times", "costs", "flagged"),
    [
        (True, ("101", "100"), ("1.00", "2.00"), 1),  # took longer than the manual work
        (True, ("30", "100"), ("2.01", "2.00"), 1),  # cost more than the manual work
        (True, ("101", "100"), ("2.01", "2.00"), 1),  # both: still one execution
        (True, ("100", "100"), ("2.00", "2.00"), 0),  # exactly the estimate saves 0, not < 0
        (False, ("101", "100"), ("2.01", "2.00"), 0),  # a failure's loss is not "negative savings"
    ],
)
def test_negative_savings_flags_only_successful_runs_that_lost(
    success: bool, times: tuple[str, str], costs: tuple[str, str], flagged: int
) -> None:
    """negative_savings_executions counts a successful run with time or cost saved below 0,
    nothing else."""
    (execution_time, estimated_time), (actual, estimated) = times, costs
    one = Totals.of_execution(
        success=success,
        execution_time_seconds=D(execution_time),
        estimated_time_seconds=D(estimated_time),
        actual_cost=D(actual),
        estimated_cost=D(estimated),
    )
    assert one.negative_savings_executions == flagged


@pytest.mark.parametrize(
    ("success", "actual", "estimated", "anomaly"),
    [
        (True, "20.01", "2.00", 1),
        (True, "20.00", "2.00", 0),  # exactly 10x is not more than 10x
        (True, "0.01", "0", 1),  # any cost against a zero estimate
        (True, "0", "0", 0),
        (False, "20.01", "2.00", 1),  # failed runs are checked too
    ],
)
def test_cost_anomaly_is_actual_cost_above_ten_times_the_estimate(
    success: bool, actual: str, estimated: str, anomaly: int
) -> None:
    """cost_anomaly_executions counts an execution whose actual cost is more than 10x its
    estimate."""
    one = Totals.of_execution(
        success=success,
        execution_time_seconds=D(1),
        estimated_time_seconds=D(1),
        actual_cost=D(actual),
        estimated_cost=D(estimated),
    )
    assert one.cost_anomaly_executions == anomaly


def _run(success: bool = True, **optional: Any) -> Totals:
    return Totals.of_execution(
        success=success,
        execution_time_seconds=D(1),
        estimated_time_seconds=D(2),
        actual_cost=D("0.10"),
        estimated_cost=D("1.00"),
        **optional,
    )


@pytest.mark.parametrize(
    ("success", "outcome", "counted"),
    [
        (True, None, "success"),  # absent: derived from success
        (False, None, "failure"),
        (True, "partial_success", "partial_success"),
        (False, "partial_success", "partial_success"),
        (False, "error", "error"),
    ],
)
def test_an_execution_counts_once_under_its_outcome(
    success: bool, outcome: str | None, counted: str
) -> None:
    """One execution adds 1 to exactly one outcome count, and ROI still reads `success`."""
    one = _run(success, outcome=outcome)
    assert one.executions_by_outcome == {
        name: int(name == counted) for name in ("success", "failure", "partial_success", "error")
    }
    assert one.successful_executions == int(success)
    assert one.cost_saved_usd == (D("0.90") if success else D("-0.10"))


def test_quality_mean_is_over_the_scored_executions_only() -> None:
    """0.5 and 1 scored, one run without a score: mean 0.75 over a count of 2."""
    totals = _run(quality_score=D("0.5")) + _run(quality_score=D(1)) + _run()
    assert (totals.quality_scored_executions, totals.quality_score_sum) == (2, D("1.5"))
    assert totals.quality_score_mean == D("0.75")
    assert _run().quality_score_mean is None


def test_tokens_saved_count_only_executions_with_both_token_counts() -> None:
    """baseline - actual where both are given (negative when the run used more), else nothing."""
    totals = (
        _run(actual_tokens=200, baseline_tokens=1000)
        + _run(actual_tokens=700, baseline_tokens=500)
        + _run(actual_tokens=100)
        + _run(baseline_tokens=100)
    )
    assert (totals.token_measured_executions, totals.tokens_saved) == (2, 600)


def test_derived_figures_are_exact_decimals() -> None:
    """The methodology's worked example: 3/4 = 0.75, 100/4 = 25 s, 30.00/4 = 7.50, ROI 300 %."""
    paying = Totals(
        executions=4,
        successful_executions=3,
        time_saved_seconds=D(100),
        cost_saved_usd=D("30.00"),
        investment_usd=D("10.00"),
        negative_savings_executions=1,
    )
    assert paying.success_rate == D("0.75")
    assert paying.average_time_saved_seconds == D(25)
    assert paying.average_cost_saved_usd == D("7.50")
    assert paying.roi_percentage == D(300)
    assert paying.negative_savings_rate == D("0.25")


def test_a_repeating_quotient_keeps_34_significant_digits() -> None:
    """ROI 100/3 % is computed to 34 digits, the same on every machine."""
    third = totals(10, 10, saved="1", spent="3")
    assert third.roi_percentage == D("33.33333333333333333333333333333333")


def test_no_executions_and_nothing_spent_give_none_not_zero() -> None:
    """Without executions rates and averages are None; without investment ROI is None."""
    empty = Totals()
    assert empty.success_rate is None
    assert empty.average_time_saved_seconds is None
    assert empty.average_cost_saved_usd is None
    assert empty.negative_savings_rate is None
    assert empty.roi_percentage is None
    assert totals(5, 5, saved="12.00", spent="0").roi_percentage is None
    assert totals(5, 5, saved="12.00", spent="0.00").roi_percentage is None


# --------------------------------------------------------------------------- ratings


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # excellent: success rate >= 0.95 and ROI >= 200 %
        (totals(20, 19, "200.00", "100.00"), Rating.EXCELLENT),  # both exactly at the threshold
        (totals(20, 19, "199.99", "100.00"), Rating.GOOD),  # ROI just below 200
        (totals(100, 94, "200.00", "100.00"), Rating.GOOD),  # rate 0.94, just below 0.95
        (totals(20, 20, "1000.00", "100.00"), Rating.EXCELLENT),
        # good: >= 0.85 and >= 100 %
        (totals(20, 17, "100.00", "100.00"), Rating.GOOD),  # both exactly at the threshold
        (totals(20, 17, "99.99", "100.00"), Rating.ACCEPTABLE),  # ROI just below 100
        (totals(100, 84, "100.00", "100.00"), Rating.ACCEPTABLE),  # rate 0.84
        (totals(100, 84, "1000.00", "100.00"), Rating.ACCEPTABLE),  # a high ROI does not help
        # acceptable: >= 0.70 and >= 50 %
        (totals(20, 14, "50.00", "100.00"), Rating.ACCEPTABLE),  # both exactly at the threshold
        (totals(20, 14, "49.99", "100.00"), Rating.POOR),  # ROI just below 50
        (totals(100, 69, "50.00", "100.00"), Rating.POOR),  # rate 0.69
        (totals(20, 20, "49.99", "100.00"), Rating.POOR),  # a perfect rate does not help
        # failed: ROI < 0, checked after the three rules
        (totals(20, 20, "-0.01", "100.00"), Rating.FAILED),  # a perfect rate still loses money
        (totals(20, 0, "-100.00", "100.00"), Rating.FAILED),
        (totals(20, 20, "0.00", "100.00"), Rating.POOR),  # ROI exactly 0 is not a loss
        (totals(20, 0, "0.00", "100.00"), Rating.POOR),
    ],
)
def test_rating_at_every_threshold(case: Totals, expected: Rating) -> None:
    """Each rule's thresholds are inclusive; just below either one falls to the next rule."""
    assert rate(case) == expected


@pytest.mark.parametrize(
    ("case", "min_executions", "expected"),
    [
        (totals(10, 10, "300.00", "100.00"), DEFAULT_MIN_EXECUTIONS, Rating.EXCELLENT),
        (totals(9, 9, "300.00", "100.00"), DEFAULT_MIN_EXECUTIONS, Rating.INSUFFICIENT_DATA),
        (totals(9, 0, "-100.00", "100.00"), DEFAULT_MIN_EXECUTIONS, Rating.INSUFFICIENT_DATA),
        (totals(3, 3, "300.00", "100.00"), 3, Rating.EXCELLENT),
        (totals(3, 3, "300.00", "100.00"), 4, Rating.INSUFFICIENT_DATA),
        (totals(50, 50, "300.00", "100.00"), 50, Rating.EXCELLENT),
        (totals(49, 49, "300.00", "100.00"), 50, Rating.INSUFFICIENT_DATA),
        (Totals(), DEFAULT_MIN_EXECUTIONS, Rating.INSUFFICIENT_DATA),
        (Totals(), 0, Rating.INSUFFICIENT_DATA),  # no executions is never rated
    ],
)
def test_insufficient_data_below_min_executions_wins_first(
    case: Totals, min_executions: int, expected: Rating
) -> None:
    """Exactly min_executions executions are rated; one fewer (or none) is insufficient_data."""
    assert rate(case, min_executions) == expected


def test_default_min_executions_is_ten() -> None:
    """The documented default: 10 executions."""
    assert DEFAULT_MIN_EXECUTIONS == 10
    assert rate(totals(10, 10, "300.00", "100.00")) == Rating.EXCELLENT
    assert rate(totals(9, 9, "300.00", "100.00")) == Rating.INSUFFICIENT_DATA


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (totals(10, 10, "5.00", "0"), Rating.EXCELLENT),  # saved something: unbounded ROI
        (totals(20, 19, "0.01", "0"), Rating.EXCELLENT),
        (totals(10, 9, "5.00", "0"), Rating.GOOD),
        (totals(10, 7, "5.00", "0"), Rating.ACCEPTABLE),
        (totals(10, 6, "5.00", "0"), Rating.POOR),  # the rate still has to be met
        (totals(10, 10, "0", "0"), Rating.POOR),  # saved nothing: meets no ROI threshold
        (totals(10, 10, "0.00", "0.00"), Rating.POOR),
    ],
)
def test_nothing_spent_meets_every_roi_threshold_only_if_it_saved(
    case: Totals, expected: Rating
) -> None:
    """Without investment, a positive saving meets any ROI threshold and zero saving meets none."""
    assert case.roi_percentage is None
    assert rate(case) == expected


def test_the_rules_are_the_documented_ones_in_order() -> None:
    """excellent 0.95/200, good 0.85/100, acceptable 0.70/50, in that order."""
    assert [(r.rating, r.min_success_rate, r.min_roi_percentage) for r in RATING_RULES] == [
        (Rating.EXCELLENT, D("0.95"), D(200)),
        (Rating.GOOD, D("0.85"), D(100)),
        (Rating.ACCEPTABLE, D("0.70"), D(50)),
    ]
    assert frozenset({Rating.EXCELLENT, Rating.GOOD, Rating.ACCEPTABLE}) == PERFORMING
    assert frozenset({Rating.POOR, Rating.FAILED}) == UNDERPERFORMING


@pytest.mark.parametrize("rating", list(Rating))
def test_every_rating_has_a_recommendation_and_a_label(rating: Rating) -> None:
    """No rating is shown without advice and a label."""
    assert rating.recommendation.strip()
    assert rating.label.strip()


def test_failed_recommendation_is_the_documented_text() -> None:
    """docs/roi-methodology.md quotes the failed rating's recommendation word for word."""
    assert Rating.FAILED.recommendation == "Revoke approval and investigate failures"


# --------------------------------------------------------------------------- Wilson


def test_z_is_the_975th_percentile_of_the_standard_normal() -> None:
    """WILSON_Z agrees with an independent inverse normal CDF (the stdlib's) to 1e-12."""
    assert abs(WILSON_Z - D(NormalDist().inv_cdf(0.975))) < D("1e-12")


# Reference values from statsmodels 0.14: proportion_confint(successes, executions,
# method="wilson", alpha=0.05)[0], which takes z from scipy.stats.norm.ppf(0.975) =
# 1.959963984540054 (the same z as WILSON_Z).
WILSON_REFERENCE = [
    (3, 3, "0.43850296824495444"),
    (0, 10, "0.0"),
    (10, 10, "0.7224672001371106"),
    (5, 10, "0.23659309051256394"),
    (148, 150, "0.9526930912996325"),
    (1, 2, "0.09453120573423068"),
    (81, 263, "0.2552885198782742"),
    (999, 1000, "0.9943574414020421"),
    (0, 1, "0.0"),
    (19, 20, "0.7638688065532577"),
    (1, 1, "0.2065493143772374"),
]


@pytest.mark.parametrize(("successes", "executions", "expected"), WILSON_REFERENCE)
def test_wilson_lower_bound_matches_statsmodels(
    successes: int, executions: int, expected: str
) -> None:
    """The bound agrees with statsmodels' Wilson interval to 1e-12 (float precision)."""
    bound = wilson_lower_bound(successes, executions)
    assert bound is not None
    assert abs(bound - D(expected)) < D("1e-12")


def test_wilson_of_three_out_of_three_is_about_044() -> None:
    """The documented example: a rate of 1.0 from 3 runs has a lower bound of about 0.44."""
    bound = wilson_lower_bound(3, 3)
    assert bound is not None
    assert D("0.4385") < bound < D("0.4386")


@pytest.mark.parametrize("executions", [0, -1])
def test_wilson_is_none_without_executions(executions: int) -> None:
    """No executions, no bound."""
    assert wilson_lower_bound(0, executions) is None


@pytest.mark.parametrize(("successes", "executions"), [(11, 10), (2, 1), (-1, 10)])
def test_wilson_rejects_successes_outside_zero_to_executions(
    successes: int, executions: int
) -> None:
    """More successes than executions (or fewer than none) is a ValueError."""
    with pytest.raises(ValueError, match="must be between 0 and"):
        wilson_lower_bound(successes, executions)


def test_wilson_is_never_negative_nor_above_the_rate() -> None:
    """For every count up to 80 the bound lies in [0, successes / executions] (to 1e-30)."""
    for executions in range(1, 81):
        for successes in range(executions + 1):
            bound = wilson_lower_bound(successes, executions)
            assert bound is not None
            rate_ = D(successes) / executions
            assert D(0) <= bound <= rate_ + D("1e-30"), (successes, executions)


def test_wilson_of_no_successes_is_zero() -> None:
    """0 successes gives a bound of 0 up to rounding at the 34th digit, as statsmodels gives 0."""
    for executions in (1, 2, 10, 263, 1999):
        bound = wilson_lower_bound(0, executions)
        assert bound is not None
        assert D(0) <= bound < D("1e-30")


# --------------------------------------------------------------------------- trends

MONDAY = date(2026, 5, 18)


def days(*counts: tuple[int, int]) -> list[DailyCount]:
    """(executions, successes) on consecutive days from MONDAY."""
    return [DailyCount(MONDAY + timedelta(days=i), n, s) for i, (n, s) in enumerate(counts)]


def test_rising_rate_is_increasing_with_the_hand_computed_change_and_margin() -> None:
    """Rates 0.5, 0.7, 0.9 on 100 runs a day: slope 0.2/day, change 0.4, margin ~0.127."""
    rising = days((100, 50), (100, 70), (100, 90))
    fitted = success_rate_change(rising)
    assert fitted is not None
    # w = 300, wx = 300, wxx = 500, s = 210, xs = 250, span = 2, w*wxx - wx^2 = 60_000:
    # change = (w*xs - wx*s) * span / 60_000 = (75_000 - 63_000) * 2 / 60_000 = 0.4;
    # p = 210/300 = 0.7, margin = z * 2 * sqrt(0.7 * 0.3 * 300 / 60_000) = 2z * sqrt(0.00105).
    assert fitted.change == D("0.4")
    with localcontext() as context:
        context.prec = 34
        expected_margin = WILSON_Z * 2 * D("0.00105").sqrt()
    assert abs(fitted.margin - expected_margin) < D("1e-30")
    assert abs(fitted.margin - D("0.127020")) < D("1e-6")
    assert trend(rising) == Trend.INCREASING


def test_falling_rate_is_decreasing() -> None:
    """The mirror image: rates 0.9, 0.7, 0.5 give change -0.4 with the same margin."""
    falling = days((100, 90), (100, 70), (100, 50))
    fitted = success_rate_change(falling)
    rising = success_rate_change(days((100, 50), (100, 70), (100, 90)))
    assert fitted is not None
    assert rising is not None
    assert fitted == RateChange(-rising.change, rising.margin)
    assert trend(falling) == Trend.DECREASING


def test_a_large_change_within_its_margin_is_stable() -> None:
    """Rates 0.5, 0.7, 0.9 over only 10 runs a day: change 0.4, margin 2z*sqrt(0.0105) ~ 0.4017."""
    few = days((10, 5), (10, 7), (10, 9))
    fitted = success_rate_change(few)
    assert fitted is not None
    # w = 30, wx = 30, wxx = 50, s = 21, xs = 25: change = (750 - 630) * 2 / 600 = 0.4;
    # margin = z * 2 * sqrt(0.21 * 30 / 600) = 2z * sqrt(0.0105) = 0.401673...
    assert fitted.change == D("0.4")
    assert abs(fitted.margin - D("0.401673")) < D("1e-6")
    assert fitted.margin > fitted.change
    assert trend(few) == Trend.STABLE


def test_a_change_below_five_points_is_stable_even_when_certain() -> None:
    """0.50 -> 0.54 over 100,000 runs a day: beyond its margin (~0.0044) but under 0.05."""
    small = days((100_000, 50_000), (100_000, 54_000))
    fitted = success_rate_change(small)
    assert fitted is not None
    assert fitted.change == D("0.04")
    assert fitted.margin < D("0.005")
    assert trend(small) == Trend.STABLE


def test_a_change_of_exactly_five_points_is_a_trend() -> None:
    """TREND_THRESHOLD is inclusive: 0.50 -> 0.55 over 100,000 runs a day is increasing."""
    boundary = days((100_000, 50_000), (100_000, 55_000))
    fitted = success_rate_change(boundary)
    assert fitted is not None
    assert fitted.change == D("0.05")
    assert trend(boundary) == Trend.INCREASING


@pytest.mark.parametrize(
    "one_day",
    [
        [],
        days((100, 10)),
        [DailyCount(MONDAY, 100, 10), DailyCount(MONDAY, 100, 90)],  # two rows, one day
        days((100, 10), (0, 0)),  # the second day has no executions
    ],
)
def test_fewer_than_two_days_with_executions_is_no_change_and_stable(
    one_day: list[DailyCount],
) -> None:
    """A line needs two days with executions; otherwise None and stable."""
    assert success_rate_change(one_day) is None
    assert trend(one_day) == Trend.STABLE


def test_fewer_than_min_executions_in_total_is_stable() -> None:
    """The rising example is a trend with min_executions 300 (its total), not with 301."""
    rising = days((100, 50), (100, 70), (100, 90))
    assert trend(rising, min_executions=300) == Trend.INCREASING
    assert trend(rising, min_executions=301) == Trend.STABLE


def test_days_without_executions_are_ignored() -> None:
    """Zero-execution days neither move the line nor stretch the span."""
    rising = days((100, 50), (100, 70), (100, 90))
    padded = [
        DailyCount(MONDAY - timedelta(days=3), 0, 0),
        *rising,
        DailyCount(MONDAY + timedelta(days=9), 0, 0),
    ]
    assert success_rate_change(padded) == success_rate_change(rising)
    assert trend(padded) == Trend.INCREASING


def test_the_same_rate_every_day_is_no_change() -> None:
    """0.5 every day, whatever the volume: change exactly 0, stable."""
    flat = days((10, 5), (20, 10), (300, 150))
    fitted = success_rate_change(flat)
    assert fitted is not None
    assert fitted.change == 0
    assert fitted.margin > 0
    assert trend(flat) == Trend.STABLE


def test_days_need_not_be_consecutive_nor_sorted() -> None:
    """The span runs from the first to the last day with executions, in any order."""
    gap = [DailyCount(MONDAY + timedelta(days=4), 100, 90), DailyCount(MONDAY, 100, 50)]
    fitted = success_rate_change(gap)
    assert fitted is not None
    # Two points: the line passes through both, so the change is 0.9 - 0.5 over the 4 days.
    assert fitted.change == D("0.4")


# --------------------------------------------------------------------------- windows

TODAY = date(2026, 5, 20)
FORMS = ("7d", "YYYY-MM-DD")


def test_relative_window_counts_today_as_its_last_day() -> None:
    """`7d` is today and the 6 days before; the previous window is the 7 days before that."""
    window = Window.parse("7d", TODAY)
    assert window == Window(date(2026, 5, 14), TODAY)
    assert window.days == 7
    assert window.previous == Window(date(2026, 5, 7), date(2026, 5, 13))
    assert window.previous is not None
    assert window.previous.days == 7


def test_one_day_window_is_today_and_its_previous_is_yesterday() -> None:
    """`1d` is today only, compared with yesterday."""
    window = Window.parse("1d", TODAY)
    assert window == Window(TODAY, TODAY)
    assert window.days == 1
    assert window.previous == Window(date(2026, 5, 19), date(2026, 5, 19))


def test_relative_window_crosses_month_boundaries() -> None:
    """`30d` from 2026-05-20 starts 2026-04-21; the previous 30 days are 03-22 to 04-20."""
    window = Window.parse("30d", TODAY)
    assert window.since == date(2026, 4, 21)
    assert window.previous == Window(date(2026, 3, 22), date(2026, 4, 20))


def test_date_window_starts_on_that_date() -> None:
    """A date is the first day; the previous window is as long and ends the day before it."""
    window = Window.parse("2026-05-01", TODAY)
    assert window == Window(date(2026, 5, 1), TODAY)
    assert window.days == 20
    assert window.previous == Window(date(2026, 4, 11), date(2026, 4, 30))


def test_today_as_a_date_is_a_one_day_window() -> None:
    """Today's date is accepted (not in the future)."""
    assert Window.parse("2026-05-20", TODAY).days == 1


def test_no_since_is_all_time() -> None:
    """None: since None, no day count and no previous window."""
    window = Window.parse(None, TODAY)
    assert window == Window(None, TODAY)
    assert window.days is None
    assert window.previous is None


@pytest.mark.parametrize(
    "text", ["7x", "0d", "", "d", "-7d", "7", "07d", "100000d", "20260501", "last week"]
)
def test_bad_since_names_the_accepted_forms(text: str) -> None:
    """Anything but a positive day count or a real date is a ValueError naming both forms."""
    with pytest.raises(ValueError, match="neither a number of days") as caught:
        Window.parse(text, TODAY)
    assert all(form in str(caught.value) for form in FORMS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-02-30", "'2026-02-30' is not a valid date: day is out of range for month"),
        ("1000-01-01", "1000-01-01 starts before 1970-01-01"),
        ("99999d", "99999d starts before 1970-01-01"),
    ],
)
def test_impossible_and_ancient_dates_are_refused(text: str, message: str) -> None:
    """A date that does not exist, or one before 1970, is a ValueError saying which."""
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        Window.parse(text, TODAY)
    assert str(caught.value) == message


def test_the_earliest_window_has_a_previous_window() -> None:
    """A window from 1970-01-01 can still be compared with the one before it."""
    previous = Window.parse("1970-01-01", TODAY).previous
    assert previous is not None
    assert previous.until == date(1969, 12, 31)


def test_a_future_date_is_refused() -> None:
    """A date after today is a ValueError saying so, with today's date."""
    with pytest.raises(ValueError, match=r"2026-05-21 is in the future \(today is 2026-05-20"):
        Window.parse("2026-05-21", TODAY)


# --------------------------------------------------------------------------- ranking


def test_ranking_unbounded_then_roi_then_cost_saved_then_pattern_id() -> None:
    """Top performers sort: nothing spent but saved first, higher ROI, more saved, then id."""
    candidates = {
        "negative": totals(20, 20, "-50.00", "100.00"),  # ROI -50
        "tie-b": totals(20, 20, "10.00", "10.00"),  # ROI 100, saved 10
        "nothing": totals(20, 20, "0", "0"),  # no ROI, saved nothing: counts as ROI 0
        "mid-less": totals(20, 20, "20.00", "10.00"),  # ROI 200, saved 20
        "high": totals(20, 20, "30.00", "10.00"),  # ROI 300
        "free": totals(20, 20, "5.00", "0"),  # unbounded, saved 5
        "tie-a": totals(20, 20, "10.00", "10.00"),  # ROI 100, saved 10
        "mid-more": totals(20, 20, "200.00", "100.00"),  # ROI 200, saved 200
        "free-big": totals(20, 20, "50.00", "0"),  # unbounded, saved 50
    }
    ranked = sorted(candidates, key=lambda pattern: ranking_key(pattern, candidates[pattern]))
    assert ranked == [
        "free-big",
        "free",
        "high",
        "mid-more",
        "mid-less",
        "tie-a",
        "tie-b",
        "nothing",
        "negative",
    ]


def test_shortfall_lowest_roi_first_then_least_saved_then_pattern_id() -> None:
    """Underperformers sort: the biggest loss first, unbounded ROI last, names break ties A-Z."""
    candidates = {
        "b": totals(20, 10, "-50.00", "100.00"),  # ROI -50
        "a": totals(20, 10, "-50.00", "100.00"),  # the same: the name decides
        "worse": totals(20, 10, "-80.00", "100.00"),  # ROI -80
        "free": totals(20, 10, "5.00", "0"),  # unbounded
        "nothing": totals(20, 10, "0", "0"),  # no ROI, saved nothing: counts as ROI 0
        "small": totals(20, 10, "1.00", "10.00"),  # ROI 10
    }
    order = sorted(candidates, key=lambda name: shortfall_key(name, candidates[name]))
    assert order == ["worse", "a", "b", "nothing", "small", "free"]


def test_every_summary_column_fills_one_totals_field() -> None:
    """The summary columns (SUMS) map one to one onto Totals' fields, counts as integers."""
    assert list(NAME_OF_COLUMN) == list(SUMS)
    assert sorted(NAME_OF_COLUMN.values()) == sorted(f.name for f in fields(Totals))
    row = [str(index + 1) for index in range(len(SUMS))]
    totals = totals_from_row(row)
    for position, column in enumerate(SUMS):
        value = getattr(totals, NAME_OF_COLUMN[column])
        assert value == position + 1
        whole = column.endswith("_executions") or column == "total_tokens_saved"
        assert isinstance(value, int) == whole, column


# --------------------------------------------------------------------------- quality trend


def test_quality_scores_of_0_and_1_trend_exactly_like_successes() -> None:
    """Scores that are all 0 or 1 are successes by another name: the same change, margin and
    trend as the success rate's."""
    counts = [
        DailyCount(date(2026, 11, 1) + timedelta(days=d), 40, s) for d, s in enumerate((30, 34, 38))
    ]
    scores = [DailyQuality(c.day, c.executions, D(c.successes)) for c in counts]
    assert quality_change(scores) == success_rate_change(counts)
    assert quality_trend(scores) is trend(counts) is Trend.INCREASING


def test_the_quality_trend_weighs_days_by_their_scored_executions() -> None:
    """Mean 0.5 on 20 scored runs, then 0.9 on 2: the rise is 0.4, but two runs are within
    the margin; on 20 runs each day it is a trend."""
    day = date(2026, 11, 1)
    few = [DailyQuality(day, 20, D(10)), DailyQuality(day + timedelta(days=1), 2, D("1.8"))]
    many = [DailyQuality(day, 20, D(10)), DailyQuality(day + timedelta(days=1), 20, D(18))]
    for days, expected in ((few, Trend.STABLE), (many, Trend.INCREASING)):
        fitted = quality_change(days)
        assert fitted is not None
        assert fitted.change == D("0.4")
        assert quality_trend(days) is expected, fitted


def test_the_quality_trend_needs_two_scored_days_and_enough_scored_runs() -> None:
    """One day, or fewer than min_executions scored runs, is `stable`; days without a score
    do not count."""
    day = date(2026, 11, 1)
    one_day = [DailyQuality(day, 50, D(10)), DailyQuality(day + timedelta(days=3), 0, D(0))]
    assert quality_change(one_day) is None
    assert quality_trend(one_day) is Trend.STABLE
    sparse = [DailyQuality(day, 3, D(0)), DailyQuality(day + timedelta(days=1), 3, D(3))]
    assert quality_change(sparse) is not None
    assert quality_trend(sparse) is Trend.STABLE  # 6 scored runs < DEFAULT_MIN_EXECUTIONS
    assert quality_trend(sparse, min_executions=6) is Trend.INCREASING
