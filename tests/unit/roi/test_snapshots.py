"""worker.roi.snapshots: the status rule, deltas and the windows of a pattern, without a
database (tests/integration/test_snapshots.py reads them from stored executions)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.roi.methodology import WILSON_Z, Rating, Totals, rate
from worker.roi.snapshots import (
    BASELINE,
    STATUS_SUMS,
    Deltas,
    PatternWindows,
    SnapshotStatus,
    WindowKey,
    build_snapshots,
    savings_per_execution_fell,
    snapshot_status,
    status_of_sums,
    status_totals,
    success_rate_fell,
)

D = Decimal
DAY0 = date(2026, 1, 10)


def totals(executions: int, successes: int, saved: str, spent: str = "100") -> Totals:
    return Totals(
        executions=executions,
        successful_executions=successes,
        cost_saved_usd=D(saved),
        investment_usd=D(spent),
    )


# A baseline that succeeds every time and saves $10 per execution at a 1000 % ROI.
BASE = totals(100, 100, "1000")

# (window, expected status, why): each branch of the rule and its boundaries.
STATUS_TABLE = [
    (totals(9, 0, "-500"), SnapshotStatus.INSUFFICIENT_DATA, "9 < 10 executions, losing or not"),
    (totals(10, 10, "100", "10"), SnapshotStatus.ON_TRACK, "exactly 10 executions are judged"),
    (totals(100, 100, "-0.01"), SnapshotStatus.OFF_TRACK, "net loss of a cent"),
    (totals(100, 100, "-1", "0"), SnapshotStatus.OFF_TRACK, "a loss with nothing spent"),
    (totals(100, 100, "0"), SnapshotStatus.AT_RISK, "saved exactly 0: poor, not off track"),
    (totals(100, 60, "1000"), SnapshotStatus.AT_RISK, "rates poor (60 % success)"),
    (totals(100, 94, "1000"), SnapshotStatus.AT_RISK, "6 points down, beyond the margin"),
    (totals(100, 100, "750"), SnapshotStatus.AT_RISK, "per execution exactly 25 % down"),
    (totals(100, 100, "750.01"), SnapshotStatus.ON_TRACK, "per execution just under 25 % down"),
    (totals(200, 200, "2000"), SnapshotStatus.ON_TRACK, "as good as the baseline"),
]


@pytest.mark.parametrize(("window", "expected", "why"), STATUS_TABLE)
def test_status_rule(window: Totals, expected: SnapshotStatus, why: str) -> None:
    assert snapshot_status(BASE, window) is expected, why


def test_min_executions_is_the_callers() -> None:
    window = totals(5, 5, "50", "5")
    assert snapshot_status(BASE, window) is SnapshotStatus.INSUFFICIENT_DATA
    assert snapshot_status(BASE, window, min_executions=5) is SnapshotStatus.ON_TRACK


def test_success_rate_drop_of_exactly_five_points_beyond_the_margin_is_at_risk() -> None:
    """1000/1000 then 950/1000: 5 points, margin about 1.4; 951/1000 is 4.9 points."""
    baseline = totals(1000, 1000, "10000")
    assert success_rate_fell(baseline, totals(1000, 950, "10000"))
    assert not success_rate_fell(baseline, totals(1000, 951, "10000"))
    assert snapshot_status(baseline, totals(1000, 950, "10000")) is SnapshotStatus.AT_RISK
    assert snapshot_status(baseline, totals(1000, 951, "10000")) is SnapshotStatus.ON_TRACK


def test_a_fall_within_the_margin_is_not_at_risk() -> None:
    """10/10 then 9/10: 10 points down, but the margin is about 19 points."""
    window = totals(10, 9, "100", "10")
    assert snapshot_status(totals(10, 10, "100"), window) is SnapshotStatus.ON_TRACK
    assert snapshot_status(BASE, window) is SnapshotStatus.AT_RISK  # 100/100: margin about 6


def pooled_margin(n0: int, s0: int, n1: int, s1: int) -> Decimal:
    """The textbook two-proportion margin, written independently of methodology."""
    with localcontext() as context:
        context.prec = 34
        p = D(s0 + s1) / (n0 + n1)
        return WILSON_Z * (p * (1 - p) * (D(1) / n0 + D(1) / n1)).sqrt()


@pytest.mark.parametrize(
    ("n0", "s0", "n1", "s1"),
    [(10, 10, 10, 9), (20, 20, 40, 33), (50, 45, 200, 170), (7, 7, 300, 280), (100, 90, 100, 95)],
)
def test_success_rate_fell_is_the_pooled_two_proportion_test(
    n0: int, s0: int, n1: int, s1: int
) -> None:
    """The trend test on two points is the difference of the rates against the pooled margin."""
    drop = D(s0) / n0 - D(s1) / n1
    expected = drop >= D("0.05") and drop > pooled_margin(n0, s0, n1, s1)
    assert success_rate_fell(totals(n0, s0, "1"), totals(n1, s1, "1")) is expected


def test_success_rate_rising_or_missing_is_not_a_fall() -> None:
    assert not success_rate_fell(totals(1000, 900, "1"), totals(1000, 1000, "1"))
    assert not success_rate_fell(Totals(), totals(1000, 0, "1"))
    assert not success_rate_fell(totals(1000, 1000, "1"), Totals())


@pytest.mark.parametrize(
    ("baseline", "window", "fell"),
    [
        (totals(20, 20, "200"), totals(100, 100, "750"), True),  # $10 -> $7.50: -25 %
        (totals(20, 20, "200"), totals(100, 100, "750.000001"), False),
        (totals(10, 10, "-40"), totals(10, 10, "-50"), True),  # -$4 -> -$5: 25 % of |-4|
        (totals(10, 10, "-40"), totals(10, 10, "-49.99"), False),
        (totals(10, 10, "-40"), totals(10, 10, "10"), False),  # a loss turned into a saving
        (totals(10, 10, "0"), totals(10, 10, "-10"), False),  # no percentage of zero
        (Totals(), totals(10, 10, "1"), False),
    ],
)
def test_savings_per_execution_fell(baseline: Totals, window: Totals, fell: bool) -> None:
    assert savings_per_execution_fell(baseline, window) is fell


def test_deltas_compare_rates_and_per_execution_figures() -> None:
    window = Totals(
        executions=60,
        successful_executions=54,
        cost_saved_usd=D(450),
        investment_usd=D(150),
        time_saved_seconds=D(600),
    )
    baseline = Totals(
        executions=7,
        successful_executions=7,
        cost_saved_usd=D(70),
        investment_usd=D(10),
        time_saved_seconds=D(70),
    )
    deltas = Deltas.between(window, 30, baseline, 7)
    assert deltas.success_rate == D("-0.1")
    assert deltas.average_cost_saved_usd == D("-2.5")  # $7.50 against $10
    assert deltas.average_cost_saved_percentage == D(-25)
    assert deltas.average_time_saved_seconds == D(0)
    assert deltas.roi_percentage == D(300) - D(700)
    assert deltas.executions_per_day == D(2) - D(1)
    empty = Deltas.between(window, 30, Totals(), 7)
    assert empty.success_rate is None
    assert empty.average_cost_saved_percentage is None
    assert empty.executions_per_day == D(2)


def test_window_days() -> None:
    """The snapshot at day 30 covers days 0..29 and is complete from day 30 on."""
    day30 = WindowKey(30, 30)
    assert day30.first_day(DAY0) == DAY0
    assert day30.last_day(DAY0) == DAY0 + timedelta(days=29)
    assert not day30.complete(DAY0, DAY0 + timedelta(days=29))
    assert day30.complete(DAY0, DAY0 + timedelta(days=30))
    assert WindowKey(60, 30).first_day(DAY0) == DAY0 + timedelta(days=30)
    assert BASELINE.last_day(DAY0) == DAY0 + timedelta(days=6)


def windows(*complete: int) -> PatternWindows:
    """A pattern whose baseline and snapshots at `complete` days have figures."""
    found = {BASELINE: BASE}
    for n, window in zip(
        complete, (totals(100, 100, "1000"), totals(100, 100, "-1")), strict=False
    ):
        found[WindowKey(n, 30)] = window
    found.update({WindowKey(n, 30): totals(100, 100, "1000") for n in complete[2:]})
    return PatternWindows("p", DAY0, found)


def test_build_snapshots_pending_and_previous() -> None:
    today = DAY0 + timedelta(days=61)
    built = build_snapshots(windows(30, 60), today)
    assert built.baseline.complete
    assert built.baseline.status is None
    day30, day60, day90 = built.snapshots
    assert (day30.label, day30.status, day30.vs_previous) == (
        "day_30",
        SnapshotStatus.ON_TRACK,
        None,
    )
    assert day30.vs_baseline is not None
    assert day30.vs_baseline.success_rate == 0
    assert day60.status is SnapshotStatus.OFF_TRACK
    assert day60.previous_label == "day_30"
    assert day60.vs_previous is not None
    assert day60.rating is Rating.FAILED
    assert not day90.complete
    assert day90.status is None
    assert day90.totals is None
    assert day90.available_on == DAY0 + timedelta(days=90)
    assert built.latest is day60


def test_an_at_snapshot_sits_in_day_order_and_is_never_the_latest() -> None:
    at = DAY0 + timedelta(days=45)
    found = windows(30)
    found.totals[WindowKey(45, 30)] = totals(100, 100, "1000")
    built = build_snapshots(found, DAY0 + timedelta(days=50), at=at)
    assert [s.label for s in built.snapshots] == ["day_30", "at", "day_60", "day_90"]
    at_snapshot = built.snapshots[1]
    assert (at_snapshot.first_day, at_snapshot.last_day) == (
        at - timedelta(days=30),
        at - timedelta(days=1),
    )
    assert at_snapshot.previous_label == "day_30"
    assert at_snapshot.status is SnapshotStatus.ON_TRACK
    assert built.latest is built.snapshots[0]


# --------------------------------------------------------------------------- what a status reads

_MONEY = st.decimals(min_value=-10_000, max_value=10_000, places=2)
_COUNT = st.integers(min_value=0, max_value=500)


@st.composite
def full_totals(draw: st.DrawFn) -> Totals:
    """Totals with every figure set, the ones a status does not read included."""
    executions = draw(_COUNT)
    return Totals(
        executions=executions,
        successful_executions=draw(st.integers(min_value=0, max_value=executions)),
        time_saved_seconds=draw(_MONEY),
        cost_saved_usd=draw(_MONEY),
        investment_usd=abs(draw(_MONEY)),
        estimated_cost_usd=draw(_MONEY),
        execution_time_seconds=draw(_MONEY),
        estimated_time_seconds=draw(_MONEY),
        negative_savings_executions=draw(_COUNT),
        cost_anomaly_executions=draw(_COUNT),
        quality_scored_executions=draw(_COUNT),
        quality_score_sum=draw(_MONEY),
        tokens_saved=draw(st.integers(-1000, 1000)),
    )


def status_sums(full: Totals) -> tuple[object, ...]:
    """The STATUS_SUMS of `full`, as the status query returns them."""
    by_column = {
        "total_executions": full.executions,
        "successful_executions": full.successful_executions,
        "total_cost_saved_usd": full.cost_saved_usd,
        "total_actual_cost_usd": full.investment_usd,
    }
    return tuple(by_column[column] for column in STATUS_SUMS)


@given(full_totals(), full_totals(), st.integers(min_value=0, max_value=50))
def test_a_status_and_a_rating_read_only_the_status_sums(
    baseline: Totals, window: Totals, min_executions: int
) -> None:
    """latest_statuses and the rating transitions read only STATUS_SUMS: the other figures
    must not matter to the rule, and the remembered status is the rule's."""
    narrow_baseline = status_totals(status_sums(baseline))
    narrow_window = status_totals(status_sums(window))
    expected = snapshot_status(baseline, window, min_executions)
    assert snapshot_status(narrow_baseline, narrow_window, min_executions) is expected
    assert rate(narrow_window, min_executions) is rate(window, min_executions)
    sums = (*status_sums(baseline), *status_sums(window))
    assert status_of_sums(sums, min_executions) is expected
    assert status_of_sums(sums, min_executions) is expected  # remembered: the same answer
