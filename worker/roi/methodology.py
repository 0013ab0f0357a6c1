"""The ROI methodology (docs/roi-methodology.md) as pure functions: no I/O, exact arithmetic.

Summaries are counts and sums (`Totals`) that combine by addition, so a batch, a day, a window
and all time are added up the same way. Every figure the report, the metrics and the docs' worked
examples show is derived from them here: rates, averages, ROI, the rating and its recommendation,
the Wilson lower bound of the success rate, and the trend. The SQL that keeps the summary tables
(worker/roi/summaries.py) applies the same per-execution rules; tests check the two agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, localcontext
from enum import StrEnum
from typing import Any, Final, NamedTuple

from ..contract.outcome import OUTCOMES, ExecutionOutcome, derived

ZERO: Final = Decimal(0)
# Sums and differences never round: with this context they are exact whatever the digits.
EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
DEFAULT_MIN_EXECUTIONS: Final = 10
# An execution whose actual cost exceeds this multiple of its estimate is a cost anomaly.
COST_ANOMALY_FACTOR: Final = 10
# z for a two-sided 95 % interval (the 97.5th percentile of the standard normal distribution).
WILSON_Z: Final = Decimal("1.959963984540054")
# A fitted change of the daily success rate across the window of at least this much (5
# percentage points), and beyond its margin of error, is a trend; anything else is `stable`.
TREND_THRESHOLD: Final = Decimal("0.05")


@dataclass(frozen=True, slots=True)
class Totals:
    """The counts and sums of a set of executions; `a + b` is the totals of both sets.

    Money in USD and durations in seconds, all exact. `cost_saved_usd` and `time_saved_seconds`
    are net (failed runs count their own cost and time as lost); `investment_usd` is the sum of
    actual_cost. Each name is the figure's name in the report and the API; worker.roi.figures
    maps it to its summary column.
    """

    executions: int = 0
    successful_executions: int = 0
    time_saved_seconds: Decimal = ZERO
    cost_saved_usd: Decimal = ZERO
    investment_usd: Decimal = ZERO
    estimated_cost_usd: Decimal = ZERO
    execution_time_seconds: Decimal = ZERO
    estimated_time_seconds: Decimal = ZERO
    negative_savings_executions: int = 0
    cost_anomaly_executions: int = 0
    # Executions per outcome (docs/roi-methodology.md#outcomes-quality-and-tokens); the ROI
    # figures above read `success` only.
    outcome_success_executions: int = 0
    outcome_failure_executions: int = 0
    outcome_partial_success_executions: int = 0
    outcome_error_executions: int = 0
    quality_scored_executions: int = 0  # executions that carry a quality_score
    quality_score_sum: Decimal = ZERO
    token_measured_executions: int = 0  # executions that give both token counts
    tokens_saved: int = 0  # sum of baseline_tokens - actual_tokens over those; may be negative

    @classmethod
    def of_execution(
        cls,
        *,
        success: bool,
        execution_time_seconds: Decimal,
        estimated_time_seconds: Decimal,
        actual_cost: Decimal,
        estimated_cost: Decimal,
        outcome: ExecutionOutcome | None = None,
        quality_score: Decimal | None = None,
        actual_tokens: int | None = None,
        baseline_tokens: int | None = None,
    ) -> Totals:
        """One execution's contribution: what it saved, whether it is flagged, its outcome
        (derived from `success` when None), its quality and the tokens it saved."""
        measured = tokens_saved = 0
        if actual_tokens is not None and baseline_tokens is not None:
            measured, tokens_saved = 1, baseline_tokens - actual_tokens
        if success:
            time_saved = EXACT.subtract(estimated_time_seconds, execution_time_seconds)
            cost_saved = EXACT.subtract(estimated_cost, actual_cost)
        else:  # nothing was saved, and the run itself was wasted
            time_saved = EXACT.minus(execution_time_seconds)
            cost_saved = EXACT.minus(actual_cost)
        return cls(
            executions=1,
            successful_executions=int(success),
            time_saved_seconds=time_saved,
            cost_saved_usd=cost_saved,
            investment_usd=actual_cost,
            estimated_cost_usd=estimated_cost,
            execution_time_seconds=execution_time_seconds,
            estimated_time_seconds=estimated_time_seconds,
            negative_savings_executions=int(success and (time_saved < 0 or cost_saved < 0)),
            cost_anomaly_executions=int(
                actual_cost > EXACT.multiply(COST_ANOMALY_FACTOR, estimated_cost)
            ),
            **{f"outcome_{outcome or derived(success)}_executions": 1},
            quality_scored_executions=int(quality_score is not None),
            quality_score_sum=ZERO if quality_score is None else quality_score,
            token_measured_executions=measured,
            tokens_saved=tokens_saved,
        )

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(_add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))

    @property
    def success_rate(self) -> Decimal | None:
        """Successes / executions, a fraction from 0 to 1; None without executions."""
        return _ratio(Decimal(self.successful_executions), self.executions)

    @property
    def average_time_saved_seconds(self) -> Decimal | None:
        return _ratio(self.time_saved_seconds, self.executions)

    @property
    def average_cost_saved_usd(self) -> Decimal | None:
        return _ratio(self.cost_saved_usd, self.executions)

    @property
    def roi_percentage(self) -> Decimal | None:
        """100 * net cost saved / investment; None when nothing was spent (not infinite)."""
        if not self.investment_usd:
            return None
        return _exact_quotient(100 * self.cost_saved_usd, self.investment_usd)

    @property
    def negative_savings_rate(self) -> Decimal | None:
        return _ratio(Decimal(self.negative_savings_executions), self.executions)

    @property
    def quality_score_mean(self) -> Decimal | None:
        """The mean quality_score of the executions that carry one; None when none does."""
        return _ratio(self.quality_score_sum, self.quality_scored_executions)

    @property
    def executions_by_outcome(self) -> dict[ExecutionOutcome, int]:
        """Outcome -> executions, every outcome present (0 included), in OUTCOMES order."""
        return {outcome: getattr(self, f"outcome_{outcome}_executions") for outcome in OUTCOMES}


def _add(a: Any, b: Any) -> Any:
    return EXACT.add(a, b) if isinstance(a, Decimal) else a + b


def _ratio(numerator: Decimal, executions: int) -> Decimal | None:
    return _exact_quotient(numerator, Decimal(executions)) if executions else None


def _exact_quotient(numerator: Decimal, denominator: Decimal) -> Decimal:
    # 34 significant digits: far beyond any displayed place, the same on every machine.
    with localcontext() as context:
        context.prec = 34
        return numerator / denominator


# --------------------------------------------------------------------------- ratings


class Rating(StrEnum):
    """How well a pattern pays off; the first rule that matches wins (see `rate`)."""

    INSUFFICIENT_DATA = "insufficient_data"
    EXCELLENT = "excellent"
    GOOD = "good"
    ACCEPTABLE = "acceptable"
    POOR = "poor"
    FAILED = "failed"

    @property
    def recommendation(self) -> str:
        return _RECOMMENDATIONS[self]

    @property
    def label(self) -> str:
        """The rating as reports show it, e.g. `EXCELLENT ⭐⭐⭐`."""
        return _LABELS[self]


_RECOMMENDATIONS: Final = {
    Rating.INSUFFICIENT_DATA: "Keep collecting executions before judging this pattern",
    Rating.EXCELLENT: "Keep approved; a candidate for wider rollout",
    Rating.GOOD: "Keep approved",
    Rating.ACCEPTABLE: "Keep approved and look for ways to raise success rate and savings",
    Rating.POOR: "Review the pattern: its success rate or ROI is below target",
    Rating.FAILED: "Revoke approval and investigate failures",
}
_LABELS: Final = {
    Rating.INSUFFICIENT_DATA: "INSUFFICIENT DATA",
    Rating.EXCELLENT: "EXCELLENT ⭐⭐⭐",
    Rating.GOOD: "GOOD ⭐⭐",
    Rating.ACCEPTABLE: "ACCEPTABLE ⭐",
    Rating.POOR: "POOR ⚠️",
    Rating.FAILED: "FAILED ❌",
}
# Top performers are ranked among the first set, underperformers are the second.
PERFORMING: Final = frozenset({Rating.EXCELLENT, Rating.GOOD, Rating.ACCEPTABLE})
UNDERPERFORMING: Final = frozenset({Rating.POOR, Rating.FAILED})


@dataclass(frozen=True, slots=True)
class RatingRule:
    """A rating earned with at least this success rate (fraction) and ROI (percent)."""

    rating: Rating
    min_success_rate: Decimal
    min_roi_percentage: Decimal


RATING_RULES: Final = (
    RatingRule(Rating.EXCELLENT, Decimal("0.95"), Decimal(200)),
    RatingRule(Rating.GOOD, Decimal("0.85"), Decimal(100)),
    RatingRule(Rating.ACCEPTABLE, Decimal("0.70"), Decimal(50)),
)


def rate(totals: Totals, min_executions: int = DEFAULT_MIN_EXECUTIONS) -> Rating:
    """The rating of a pattern with these totals; the first matching rule wins.

    A pattern that spent nothing has no ROI percentage; if it saved money its return is
    unbounded and meets every ROI threshold, if it saved nothing it meets none.
    """
    rate_ = totals.success_rate
    if rate_ is None or totals.executions < min_executions:
        return Rating.INSUFFICIENT_DATA
    for rule in RATING_RULES:
        if rate_ >= rule.min_success_rate and _roi_reaches(totals, rule.min_roi_percentage):
            return rule.rating
    roi = totals.roi_percentage
    if roi is not None and roi < 0:
        return Rating.FAILED
    return Rating.POOR


def _roi_reaches(totals: Totals, threshold: Decimal) -> bool:
    roi = totals.roi_percentage
    if roi is None:
        return totals.cost_saved_usd > 0
    return roi >= threshold


def ranking_key(pattern_id: str, totals: Totals) -> tuple[int, Decimal, Decimal, str]:
    """Sort key for top performers: highest ROI first (unbounded first), then most saved."""
    roi = totals.roi_percentage
    unbounded = roi is None and totals.cost_saved_usd > 0
    return (0 if unbounded else 1, -(roi or ZERO), -totals.cost_saved_usd, pattern_id)


def shortfall_key(pattern_id: str, totals: Totals) -> tuple[int, Decimal, Decimal, str]:
    """Sort key for underperformers: lowest ROI first (unbounded last), then least saved."""
    roi = totals.roi_percentage
    unbounded = roi is None and totals.cost_saved_usd > 0
    return (1 if unbounded else 0, roi or ZERO, totals.cost_saved_usd, pattern_id)


# --------------------------------------------------------------------------- confidence


def wilson_lower_bound(successes: int, executions: int, z: Decimal = WILSON_Z) -> Decimal | None:
    """The lower bound of the Wilson score interval (95 % by default) of the success rate.

    Unlike the plain rate it accounts for how many executions there are: 3 successes out of 3
    is a rate of 1 but a lower bound of about 0.44. None without executions.
    """
    if executions <= 0:
        return None
    if not 0 <= successes <= executions:
        raise ValueError(f"successes ({successes}) must be between 0 and {executions}")
    if successes == 0:  # exactly 0; the formula would leave rounding noise above it
        return ZERO
    with localcontext() as context:
        context.prec = 34
        n = Decimal(executions)
        p = Decimal(successes) / n
        z2 = z * z
        centre = p + z2 / (2 * n)
        margin = z * (p * (1 - p) / n + z2 / (4 * n * n)).sqrt()
        return max(ZERO, (centre - margin) / (1 + z2 / n))


# --------------------------------------------------------------------------- trends


class Trend(StrEnum):
    """Which way a pattern's daily success rate is going across the window."""

    INCREASING = "increasing"
    DECREASING = "decreasing"
    STABLE = "stable"


class DailyCount(NamedTuple):
    """One UTC day's executions and successes of a pattern (a pattern_roi_daily row)."""

    day: date
    executions: int
    successes: int


@dataclass(frozen=True, slots=True)
class RateChange:
    """The fitted change of the success rate across a window, and its 95 % margin of error."""

    change: Decimal
    margin: Decimal


@dataclass(frozen=True, slots=True)
class DailySums:
    """What the success-rate line is fitted from: sums over one pattern's days with executions,
    a day's number `x` being the days since the first of them. PostgreSQL can compute them
    (analytics does, so that it reads one row per pattern rather than one per day)."""

    days: int  # distinct days with executions
    executions: int  # sum n
    successes: int  # sum s
    day_sum: int  # sum n x
    day_square_sum: int  # sum n x^2
    success_day_sum: int  # sum s x
    span: int  # x of the last day

    @classmethod
    def of(cls, days: Sequence[DailyCount]) -> DailySums:
        days = [d for d in days if d.executions > 0]
        if not days:
            return cls(0, 0, 0, 0, 0, 0, 0)
        first = min(d.day for d in days)
        return cls(
            days=len({d.day for d in days}),
            executions=sum(d.executions for d in days),
            successes=sum(d.successes for d in days),
            day_sum=sum(d.executions * (d.day - first).days for d in days),
            day_square_sum=sum(d.executions * (d.day - first).days ** 2 for d in days),
            success_day_sum=sum(d.successes * (d.day - first).days for d in days),
            span=(max(d.day for d in days) - first).days,
        )


def success_rate_change(days: Sequence[DailyCount] | DailySums) -> RateChange | None:
    """How much the success rate changed across the days, from a least-squares line.

    The line is fitted to each day's success rate, weighted by that day's executions, so a day
    with one run counts for little. The change is its slope times the number of days from the
    first day with executions to the last; the margin is WILSON_Z standard errors of that
    change, for executions that all succeed with the window's overall rate (no real change).
    None with fewer than two days with executions.
    """
    sums = days if isinstance(days, DailySums) else DailySums.of(days)
    if sums.days < 2:
        return None
    return _fitted_change(
        w=sums.executions,
        wx=sums.day_sum,
        wxx=sums.day_square_sum,
        s=Decimal(sums.successes),
        xs=Decimal(sums.success_day_sum),
        span=sums.span,
    )


def _fitted_change(*, w: int, wx: int, wxx: int, s: Decimal, xs: Decimal, span: int) -> RateChange:
    """The change across `span` days of the line fitted by weighted least squares to each
    day's mean (its sum / its weight), and its 95 % margin for values in [0, 1] whose variance
    is at most mean * (1 - mean) (exactly that for successes, which are 0 or 1).

    w, wx, wxx: sums over the days of weight, weight * x, weight * x^2 (x: the day's number);
    s, xs: of the day's sum of values, and that times x. Needs two distinct days.
    """
    spread = w * wxx - wx * wx  # w times the weighted sum of squared deviations of the days
    numerator = EXACT.multiply(EXACT.subtract(EXACT.multiply(w, xs), EXACT.multiply(wx, s)), span)
    with localcontext() as context:
        context.prec = 34
        change = numerator / spread
        mean = s / w
        margin = WILSON_Z * span * (mean * (1 - mean) * w / spread).sqrt()
    return RateChange(change, margin)


def trend(
    days: Sequence[DailyCount] | DailySums, min_executions: int = DEFAULT_MIN_EXECUTIONS
) -> Trend:
    """`increasing` or `decreasing` when the success rate changed across the days (see
    `success_rate_change`) by at least TREND_THRESHOLD and by more than its margin of error;
    `stable` otherwise, and with fewer than `min_executions` executions or two days of data."""
    sums = days if isinstance(days, DailySums) else DailySums.of(days)
    fitted = success_rate_change(sums)
    if fitted is None or sums.executions < min_executions:
        return Trend.STABLE
    return _direction(fitted)


def _direction(fitted: RateChange) -> Trend:
    size = abs(fitted.change)
    if size < TREND_THRESHOLD or size <= fitted.margin:
        return Trend.STABLE
    return Trend.INCREASING if fitted.change > 0 else Trend.DECREASING


class DailyQuality(NamedTuple):
    """One UTC day's scored executions of a pattern and the sum of their quality_score."""

    day: date
    scored: int
    score_sum: Decimal


@dataclass(frozen=True, slots=True)
class DailyQualitySums:
    """DailySums for the daily mean quality score: the weights are the days' scored
    executions, the values their quality_score sums; x counts from the first scored day."""

    days: int  # distinct days with scored executions
    scored: int  # sum n
    score_sum: Decimal  # sum q
    day_sum: int  # sum n x
    day_square_sum: int  # sum n x^2
    score_day_sum: Decimal  # sum q x
    span: int  # x of the last day

    @classmethod
    def of(cls, days: Sequence[DailyQuality]) -> DailyQualitySums:
        days = [d for d in days if d.scored > 0]
        if not days:
            return cls(0, 0, ZERO, 0, 0, ZERO, 0)
        first = min(d.day for d in days)
        return cls(
            days=len({d.day for d in days}),
            scored=sum(d.scored for d in days),
            score_sum=_exact_sum(d.score_sum for d in days),
            day_sum=sum(d.scored * (d.day - first).days for d in days),
            day_square_sum=sum(d.scored * (d.day - first).days ** 2 for d in days),
            score_day_sum=_exact_sum(
                EXACT.multiply(d.score_sum, (d.day - first).days) for d in days
            ),
            span=(max(d.day for d in days) - first).days,
        )


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    total = ZERO
    for value in values:
        total = EXACT.add(total, value)
    return total


def quality_change(days: Sequence[DailyQuality] | DailyQualitySums) -> RateChange | None:
    """How much the mean quality score changed across the days: the success-rate fit
    (`success_rate_change`) applied to each day's mean score, weighted by its scored
    executions. None with fewer than two days with scored executions."""
    sums = days if isinstance(days, DailyQualitySums) else DailyQualitySums.of(days)
    if sums.days < 2:
        return None
    return _fitted_change(
        w=sums.scored,
        wx=sums.day_sum,
        wxx=sums.day_square_sum,
        s=sums.score_sum,
        xs=sums.score_day_sum,
        span=sums.span,
    )


def quality_trend(
    days: Sequence[DailyQuality] | DailyQualitySums, min_executions: int = DEFAULT_MIN_EXECUTIONS
) -> Trend:
    """The trend of the mean quality score, by the success trend's rule (`trend`): a change of
    at least TREND_THRESHOLD (0.05 of the 0..1 scale) beyond its margin; `stable` with fewer
    than `min_executions` scored executions or two days of them."""
    sums = days if isinstance(days, DailyQualitySums) else DailyQualitySums.of(days)
    fitted = quality_change(sums)
    if fitted is None or sums.scored < min_executions:
        return Trend.STABLE
    return _direction(fitted)


# --------------------------------------------------------------------------- windows

_RELATIVE = re.compile(r"^([1-9][0-9]{0,4})d$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
EARLIEST: Final = date(1970, 1, 1)  # windows start no earlier (and their previous ones can)


@dataclass(frozen=True, slots=True)
class Window:
    """Whole UTC days from `since` to now; all time when `since` is None.

    The previous window has the same number of days and ends the day before `since`, so the
    two can be compared (baseline versus now).
    """

    since: date | None
    until: date

    @property
    def days(self) -> int | None:
        return None if self.since is None else (self.until - self.since).days + 1

    @property
    def previous(self) -> Window | None:
        if self.since is None or self.days is None:
            return None
        return Window(self.since - timedelta(days=self.days), self.since - timedelta(days=1))

    @classmethod
    def parse(cls, text: str | None, today: date) -> Window:
        """`7d` (today and the 6 days before), a date `YYYY-MM-DD`, or None: all time.

        Raises ValueError with a one-line message saying what is wrong.
        """
        if text is None:
            return cls(None, today)
        text = text.strip()
        relative = _RELATIVE.match(text)
        if relative:
            since = today - timedelta(days=int(relative[1]) - 1)
        elif _DATE.match(text):
            try:
                since = date.fromisoformat(text)
            except ValueError as exc:
                raise ValueError(f"{text!r} is not a valid date: {exc}") from None
        else:
            raise ValueError(
                f"{text!r} is neither a number of days (7d, 30d, 90d) nor a date (YYYY-MM-DD)"
            )
        if since > today:
            raise ValueError(f"{text} is in the future (today is {today} UTC)")
        if since < EARLIEST:
            raise ValueError(f"{text} starts before {EARLIEST}")
        return cls(since, today)
