"""Snapshots of a pattern (docs/roi-methodology.md, "Snapshots"): its first week, then 30-day
windows at day 30, 60 and 90 after its first execution, each judged against that first week.

Day 0 is the UTC date of the pattern's first stored (or archived) execution, read from
pattern_roi_summary.first_executed_at; every figure is a sum of pattern_roi_daily rows, which
keep every day, also those whose raw executions retention deleted. A window ending at day N
covers the days [N - width, N): the baseline ends at day 7 (days 0..6), the snapshot at day 30
covers days 0..29, the one at day 60 days 30..59. A window is complete, and judged, once day N
has begun (day 0 + N <= today), so a snapshot never changes after it is first shown.

The status rule (`snapshot_status`) is pure; `read_windows` reads every window of any number of
patterns in one query, and `latest_statuses` is that read cut down to what the worker's batch
transaction needs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

import psycopg

from .analytics import totals_from_row
from .methodology import (
    _DATE,
    DEFAULT_MIN_EXECUTIONS,
    EARLIEST,
    EXACT,
    TREND_THRESHOLD,
    DailySums,
    Rating,
    Totals,
    Trend,
    _exact_quotient,
    rate,
    trend,
    wilson_lower_bound,
)
from .summaries import SUMS

BASELINE_DAYS: Final = 7
WINDOW_DAYS: Final = 30
SNAPSHOT_DAYS: Final = (30, 60, 90)
# A window whose net savings per execution are this fraction (25 %) or more below the
# baseline's is at risk.
SAVINGS_DROP: Final = Decimal("0.25")
# A success rate this much (5 percentage points) or more below the baseline's, and beyond the
# margin of that difference, is at risk: the trend test's threshold.
SUCCESS_RATE_DROP: Final = TREND_THRESHOLD


class SnapshotStatus(StrEnum):
    """How a snapshot's window compares with the pattern's first week (see `snapshot_status`)."""

    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    INSUFFICIENT_DATA = "insufficient_data"


def snapshot_status(
    baseline: Totals, window: Totals, min_executions: int = DEFAULT_MIN_EXECUTIONS
) -> SnapshotStatus:
    """The status of a window against the baseline; the first rule that matches wins.

    `insufficient_data` with fewer than `min_executions` executions in the window;
    `off_track` when its net savings are negative or it rates failed; `at_risk` when it rates
    poor, its success rate fell (`success_rate_fell`) or its net savings per execution fell
    by 25 % or more (`savings_per_execution_fell`); `on_track` otherwise.
    """
    if window.executions < min_executions:
        return SnapshotStatus.INSUFFICIENT_DATA
    rating = rate(window, min_executions)
    if window.cost_saved_usd < 0 or rating is Rating.FAILED:
        return SnapshotStatus.OFF_TRACK
    if (
        rating is Rating.POOR
        or success_rate_fell(baseline, window)
        or savings_per_execution_fell(baseline, window)
    ):
        return SnapshotStatus.AT_RISK
    return SnapshotStatus.ON_TRACK


def success_rate_fell(baseline: Totals, window: Totals) -> bool:
    """Whether the success rate fell from the baseline to the window by at least 5 points and
    by more than the 95 % margin of that difference.

    This is methodology's trend test on two points, the baseline at x = 0 and the window at
    x = 1: the fitted change is then exactly the difference of the two rates and its margin
    the pooled two-proportion margin, WILSON_Z * sqrt(p (1 - p) (1/n0 + 1/n1)). False when
    either has no executions.
    """
    if not baseline.executions or not window.executions:
        return False
    two_points = DailySums(
        days=2,
        executions=baseline.executions + window.executions,
        successes=baseline.successful_executions + window.successful_executions,
        day_sum=window.executions,
        day_square_sum=window.executions,
        success_day_sum=window.successful_executions,
        span=1,
    )
    return trend(two_points, min_executions=0) is Trend.DECREASING


def savings_per_execution_fell(baseline: Totals, window: Totals) -> bool:
    """Whether net cost saved per execution fell by 25 % or more of the baseline's (its
    absolute value, so a baseline loss that deepens counts too). Compared exactly, without
    dividing: c0 n1 - c1 n0 >= 0.25 |c0| n1. False when either has no executions or the
    baseline saved exactly nothing (no percentage of zero)."""
    n0, n1 = baseline.executions, window.executions
    c0, c1 = baseline.cost_saved_usd, window.cost_saved_usd
    if not n0 or not n1 or not c0:
        return False
    fall = EXACT.subtract(EXACT.multiply(c0, n1), EXACT.multiply(c1, n0))
    return fall >= EXACT.multiply(SAVINGS_DROP, EXACT.multiply(abs(c0), n1))


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class Deltas:
    """A window's figures minus a reference window's (the baseline, or the previous snapshot).

    Windows differ in length, so these compare rates and per-execution figures, never totals.
    Each is None when either side has no value (no executions, nothing invested).
    """

    success_rate: Decimal | None  # a fraction: -0.05 is 5 percentage points lower
    average_cost_saved_usd: Decimal | None  # net cost saved per execution, in USD
    average_cost_saved_percentage: Decimal | None  # 100 * change / |reference|; None if 0
    average_time_saved_seconds: Decimal | None
    roi_percentage: Decimal | None  # in percentage points
    executions_per_day: Decimal | None

    @classmethod
    def between(cls, window: Totals, window_days: int, reference: Totals, days: int) -> Deltas:
        """`window` (of `window_days` days) against `reference` (of `days` days)."""
        before = reference.average_cost_saved_usd
        change = _difference(window.average_cost_saved_usd, before)
        percentage = None
        if change is not None and before:
            percentage = _exact_quotient(100 * change, abs(before))
        return cls(
            success_rate=_difference(window.success_rate, reference.success_rate),
            average_cost_saved_usd=change,
            average_cost_saved_percentage=percentage,
            average_time_saved_seconds=_difference(
                window.average_time_saved_seconds, reference.average_time_saved_seconds
            ),
            roi_percentage=_difference(window.roi_percentage, reference.roi_percentage),
            executions_per_day=_difference(
                _exact_quotient(Decimal(window.executions), Decimal(window_days)),
                _exact_quotient(Decimal(reference.executions), Decimal(days)),
            ),
        )


def _difference(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else EXACT.subtract(a, b)


@dataclass(frozen=True, slots=True)
class WindowKey:
    """A window of a pattern: it ends at day `end` (exclusive) and covers `width` days."""

    end: int
    width: int

    def first_day(self, day0: date) -> date:
        return day0 + timedelta(days=self.end - self.width)

    def last_day(self, day0: date) -> date:
        """The window's last day (inclusive)."""
        return day0 + timedelta(days=self.end - 1)

    def complete(self, day0: date, today: date) -> bool:
        """Every day of the window is over: day `end` has begun."""
        return day0 + timedelta(days=self.end) <= today


BASELINE: Final = WindowKey(BASELINE_DAYS, BASELINE_DAYS)


@dataclass(frozen=True, slots=True)
class PatternWindows:
    """One pattern's day 0 and the totals of its complete windows (by WindowKey)."""

    pattern_id: str
    day0: date
    totals: dict[WindowKey, Totals]


# The summary columns a status depends on (`rating_figures`): the rating and every status rule
# read executions, successes, net cost saved and investment, nothing else.
STATUS_SUMS: Final = (
    "total_executions",
    "successful_executions",
    "total_cost_saved_usd",
    "total_actual_cost_usd",
)
STATUS_CACHE_SIZE: Final = 4096  # statuses remembered by their windows' sums (~1 KB each)
# Day 0 of each pattern; each complete window (the baseline, the snapshots at %(days)s, the one
# at the date %(at)s), or only the baseline and the latest snapshot when %(latest)s; each
# window's sums over its days of pattern_roi_daily. One statement for any number of patterns;
# with %(latest)s, a pattern that has not reached its first snapshot reads nothing. The sums
# are a LATERAL subquery per window, so each is a range read of the (pattern_id, day) primary
# key over the window's days: the cost follows the windows read, never the history stored (a
# join the planner may hash would scan every daily row of the patterns, or the whole table).
_WINDOWS_TEMPLATE: Final = """
WITH starts AS (
    SELECT pattern_id, (first_executed_at AT TIME ZONE 'UTC')::date AS day0
    FROM pattern_roi_summary
    WHERE (%(patterns)s::text[] IS NULL OR pattern_id = ANY(%(patterns)s::text[]))
      AND first_executed_at IS NOT NULL
      AND (NOT %(latest)s OR (first_executed_at AT TIME ZONE 'UTC')::date + (
          SELECT min(m) FROM unnest(%(days)s::int[]) AS m) <= %(today)s)
), windows AS (
    SELECT s.pattern_id, s.day0, w.n, w.width
    FROM starts AS s CROSS JOIN LATERAL (
        SELECT {baseline} AS n, {baseline} AS width
        UNION  -- not ALL: a window asked for twice (`at` on day 60) is summed once
        SELECT n, {window} FROM unnest(%(days)s::int[]) AS n
        WHERE NOT %(latest)s OR n = (
            SELECT max(m) FROM unnest(%(days)s::int[]) AS m WHERE s.day0 + m <= %(today)s
        )
        UNION
        SELECT %(at)s::date - s.day0, {window} WHERE %(at)s::date IS NOT NULL
    ) AS w
    WHERE s.day0 + w.n <= %(today)s
)
SELECT w.pattern_id, w.day0, w.n, w.width, sums.*
FROM windows AS w CROSS JOIN LATERAL (
    SELECT {sums} FROM pattern_roi_daily AS d
    WHERE d.pattern_id = w.pattern_id
      AND d.day >= w.day0 + (w.n - w.width) AND d.day < w.day0 + w.n
) AS sums
"""


def _windows_query(columns: Sequence[str]) -> str:
    return _WINDOWS_TEMPLATE.format(
        baseline=BASELINE_DAYS,
        window=WINDOW_DAYS,
        sums=", ".join(f"coalesce(sum(d.{column}), 0)" for column in columns),
    )


_WINDOWS: Final = _windows_query(tuple(SUMS))

# `latest_statuses`: per pattern at day 30 or later, N (its latest snapshot's day) and the
# STATUS_SUMS of its baseline [0, 7) and of its window [N - 30, N), each summed in a LATERAL
# subquery from a range read of the (pattern_id, day) key: 37 daily rows per pattern, whatever
# its age or the history stored.
_LATEST_DAY: Final = " ".join(
    f"WHEN day0 + {n} <= %(today)s THEN {n}" for n in sorted(SNAPSHOT_DAYS, reverse=True)
)
_STATUS_SUMS_OF_DAYS: Final = (
    f"SELECT {', '.join(f'coalesce(sum({c}), 0)' for c in STATUS_SUMS)} FROM pattern_roi_daily "
    "WHERE pattern_id = l.pattern_id AND day >= l.day0 + {first} AND day < l.day0 + {end}"
)
_STATUS_WINDOWS: Final = f"""
WITH latest AS MATERIALIZED (  -- N worked out once per pattern, not in every row's condition
    SELECT pattern_id, day0, CASE {_LATEST_DAY} END AS n
    FROM (
        SELECT pattern_id, (first_executed_at AT TIME ZONE 'UTC')::date AS day0
        FROM pattern_roi_summary
        WHERE pattern_id = ANY(%(patterns)s::text[]) AND first_executed_at IS NOT NULL
    ) AS starts
)
SELECT l.pattern_id, baseline.*, snapshot.*
FROM latest AS l
CROSS JOIN LATERAL ({_STATUS_SUMS_OF_DAYS.format(first=0, end=BASELINE_DAYS)}) AS baseline
CROSS JOIN LATERAL ({_STATUS_SUMS_OF_DAYS.format(first=f"l.n - {WINDOW_DAYS}", end="l.n")})
    AS snapshot
WHERE l.n IS NOT NULL
"""
_DAY_ZERO: Final = """
SELECT pattern_id, (first_executed_at AT TIME ZONE 'UTC')::date FROM pattern_roi_summary
WHERE (%(patterns)s::text[] IS NULL OR pattern_id = ANY(%(patterns)s::text[]))
  AND first_executed_at IS NOT NULL
"""


def read_windows(
    cur: psycopg.Cursor[Any],
    today: date,
    *,
    pattern_ids: Sequence[str] | None = None,
    at: date | None = None,
    latest_only: bool = False,
) -> dict[str, PatternWindows]:
    """Day 0 and the complete windows of each pattern (every pattern when `pattern_ids` is
    None): the baseline, the snapshots at SNAPSHOT_DAYS (only the latest complete one with
    `latest_only`) and the snapshot ending at the date `at`. A pattern too young for any
    complete window is still there, with no totals, unless `latest_only` (which reads no more
    than it needs, one statement, and leaves out a pattern before day 30)."""
    params: dict[str, Any] = {
        "patterns": None if pattern_ids is None else list(pattern_ids),
        "days": list(SNAPSHOT_DAYS),
        "latest": latest_only,
        "today": today,
        "at": at,
    }
    found: dict[str, PatternWindows] = {}
    if not latest_only:  # the windows' read leaves out patterns without a complete window
        for pattern_id, day0 in cur.execute(_DAY_ZERO, params).fetchall():
            found[pattern_id] = PatternWindows(pattern_id, day0, {})
    for pattern_id, day0, end, width, *sums in cur.execute(_WINDOWS, params).fetchall():
        windows = found.setdefault(pattern_id, PatternWindows(pattern_id, day0, {}))
        windows.totals[WindowKey(end, width)] = totals_from_row(sums)
    return found


@dataclass(frozen=True, slots=True)
class LatestSnapshot:
    """A pattern's latest complete snapshot at one of SNAPSHOT_DAYS, and its status."""

    day: int
    first_day: date
    last_day: date
    status: SnapshotStatus


def read_latest(
    cur: psycopg.Cursor[Any],
    today: date,
    min_executions: int = DEFAULT_MIN_EXECUTIONS,
    pattern_ids: Sequence[str] | None = None,
) -> dict[str, LatestSnapshot]:
    """The latest snapshot of each pattern (every pattern when `pattern_ids` is None) that has
    reached day 30: one statement, summing at most 37 daily rows per pattern."""
    found = {}
    for pattern_id, windows in read_windows(
        cur, today, pattern_ids=pattern_ids, latest_only=True
    ).items():
        latest = _latest_key(windows.totals)
        if latest is not None:
            found[pattern_id] = LatestSnapshot(
                day=latest.end,
                first_day=latest.first_day(windows.day0),
                last_day=latest.last_day(windows.day0),
                status=_status_of(latest, windows.totals, min_executions),
            )
    return found


def latest_statuses(
    cur: psycopg.Cursor[Any],
    pattern_ids: Sequence[str],
    today: date,
    min_executions: int = DEFAULT_MIN_EXECUTIONS,
) -> dict[str, SnapshotStatus | None]:
    """Each pattern's latest snapshot status: that of the largest N in SNAPSHOT_DAYS whose
    window is complete on `today`; None for a pattern that has not reached day 30, or has no
    stored execution. One statement whatever the number of patterns (it runs in the worker's
    batch transaction): an index range read of the baseline's and the latest window's days of
    each pattern that reached day 30, of the STATUS_SUMS columns only."""
    if not pattern_ids:
        return {}
    found: dict[str, SnapshotStatus | None] = dict.fromkeys(pattern_ids)
    for pattern_id, sums in read_status_sums(cur, pattern_ids, today).items():
        found[pattern_id] = status_of_sums(sums, min_executions)
    return found


def read_status_sums(
    cur: psycopg.Cursor[Any], pattern_ids: Sequence[str], today: date
) -> dict[str, tuple[Any, ...]]:
    """The STATUS_SUMS of the baseline, then those of the latest complete snapshot's window,
    of each of these patterns that has reached day 30 on `today` (one statement)."""
    params = {"patterns": list(pattern_ids), "today": today}
    return {row[0]: tuple(row[1:]) for row in cur.execute(_STATUS_WINDOWS, params).fetchall()}


@functools.lru_cache(maxsize=STATUS_CACHE_SIZE)
def status_of_sums(sums: tuple[Any, ...], min_executions: int) -> SnapshotStatus:
    """`snapshot_status` of a baseline and a window given by their STATUS_SUMS, one after the
    other. A pure function of its arguments, so remembered: a pattern's complete windows
    rarely change from one batch to the next (only late events reach them), and each batch
    would otherwise judge the same sums again. The cache takes equal Decimals (1.10, 1.1) for
    one key: right while a status depends on values only, as every rule of
    worker.roi.methodology does; a rule that read a number's scale would need another key."""
    columns = len(STATUS_SUMS)
    baseline, window = status_totals(sums[:columns]), status_totals(sums[columns:])
    return snapshot_status(baseline, window, min_executions)


def status_totals(values: Sequence[Any]) -> Totals:
    """Totals from the values of the STATUS_SUMS columns, in that order; the other figures
    stay 0 (a status and a rating never read them)."""
    executions, successes, cost_saved, investment = values
    return Totals(
        executions=int(executions),
        successful_executions=int(successes),
        cost_saved_usd=Decimal(cost_saved),
        investment_usd=Decimal(investment),
    )


def _latest_key(totals: dict[WindowKey, Totals]) -> WindowKey | None:
    """The window of the largest of SNAPSHOT_DAYS among `totals`, if any."""
    for days in reversed(SNAPSHOT_DAYS):
        key = WindowKey(days, WINDOW_DAYS)
        if key in totals:
            return key
    return None


def _status_of(
    key: WindowKey, totals: dict[WindowKey, Totals], min_executions: int
) -> SnapshotStatus:
    return snapshot_status(totals.get(BASELINE, Totals()), totals[key], min_executions)


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One window of a pattern as the report and the API show it.

    `day` is N, the window covering days [N - days, N) after day 0, from `first_day` to
    `last_day` inclusive. A pending window (not complete yet) has no figures or status; it is
    judged from `available_on` (= last_day + 1). The baseline has no status or deltas.
    """

    label: str  # "baseline", "day_30", "day_60", "day_90" or "at"
    day: int
    days: int
    first_day: date
    last_day: date
    complete: bool
    totals: Totals | None
    rating: Rating | None
    wilson_lower_bound: Decimal | None
    status: SnapshotStatus | None
    vs_baseline: Deltas | None
    vs_previous: Deltas | None
    previous_label: str | None

    @property
    def available_on(self) -> date:
        return self.last_day + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PatternSnapshots:
    """A pattern's day 0, baseline and snapshots (in day order), and its latest status."""

    pattern_id: str
    day0: date
    baseline: Snapshot
    snapshots: tuple[Snapshot, ...]

    @property
    def latest(self) -> Snapshot | None:
        """The complete snapshot at the largest of SNAPSHOT_DAYS, if any (never `at`)."""
        done = [s for s in self.snapshots if s.complete and s.label != "at"]
        return done[-1] if done else None


def build_snapshots(
    windows: PatternWindows,
    today: date,
    min_executions: int = DEFAULT_MIN_EXECUTIONS,
    at: date | None = None,
) -> PatternSnapshots:
    """The baseline and the snapshots at SNAPSHOT_DAYS (and at the date `at`) of one pattern
    from its windows' totals. The previous snapshot of one at day N is the fixed snapshot at
    the largest of SNAPSHOT_DAYS below N (none for day 30, nor for an `at` before day 31)."""
    day0 = windows.day0
    baseline_totals = windows.totals.get(BASELINE)
    baseline = _snapshot("baseline", BASELINE, windows, today, min_executions)
    keys = [(f"day_{n}", WindowKey(n, WINDOW_DAYS)) for n in SNAPSHOT_DAYS]
    if at is not None:
        keys.append(("at", WindowKey((at - day0).days, WINDOW_DAYS)))
    keys.sort(key=lambda item: (item[1].end, item[0] == "at"))
    snapshots = []
    for label, key in keys:
        fixed_before = [n for n in SNAPSHOT_DAYS if n < key.end]
        previous_key = WindowKey(fixed_before[-1], WINDOW_DAYS) if fixed_before else None
        snapshots.append(
            _snapshot(
                label,
                key,
                windows,
                today,
                min_executions,
                baseline=baseline_totals,
                previous_key=previous_key,
            )
        )
    return PatternSnapshots(windows.pattern_id, day0, baseline, tuple(snapshots))


def _snapshot(
    label: str,
    key: WindowKey,
    windows: PatternWindows,
    today: date,
    min_executions: int,
    *,
    baseline: Totals | None = None,
    previous_key: WindowKey | None = None,
) -> Snapshot:
    day0 = windows.day0
    totals = windows.totals.get(key) if key.complete(day0, today) else None
    previous = None if previous_key is None else windows.totals.get(previous_key)
    judged = totals is not None and label != "baseline"
    return Snapshot(
        label=label,
        day=key.end,
        days=key.width,
        first_day=key.first_day(day0),
        last_day=key.last_day(day0),
        complete=totals is not None,
        totals=totals,
        rating=None if totals is None else rate(totals, min_executions),
        wilson_lower_bound=(
            None
            if totals is None
            else wilson_lower_bound(totals.successful_executions, totals.executions)
        ),
        status=(
            snapshot_status(baseline or Totals(), totals, min_executions)
            if judged and totals is not None
            else None
        ),
        vs_baseline=(
            Deltas.between(totals, key.width, baseline, BASELINE_DAYS)
            if judged and totals is not None and baseline is not None
            else None
        ),
        vs_previous=(
            Deltas.between(totals, key.width, previous, WINDOW_DAYS)
            if judged and totals is not None and previous is not None
            else None
        ),
        previous_label=None if previous_key is None else f"day_{previous_key.end}",
    )


def parse_at(text: str, today: date) -> date:
    """The date of an extra snapshot (`--at`, `?at=`): YYYY-MM-DD, from EARLIEST to `today`.
    Raises ValueError with a one-line message saying what is wrong."""
    try:
        at = date.fromisoformat(text.strip()) if _DATE.match(text.strip()) else None
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from None
    if at is None:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)")
    if at > today:
        raise ValueError(f"{text} is in the future (today is {today} UTC)")
    if at < EARLIEST:
        raise ValueError(f"{text} is before {EARLIEST}")
    return at


def load_snapshots(
    cur: psycopg.Cursor[Any],
    today: date,
    min_executions: int = DEFAULT_MIN_EXECUTIONS,
    *,
    pattern_ids: Sequence[str] | None = None,
    at: date | None = None,
) -> dict[str, PatternSnapshots]:
    """The snapshots of each pattern (every pattern when `pattern_ids` is None), read through
    `cur` (two statements; use a `snapshot` cursor so they agree)."""
    windows = read_windows(cur, today, pattern_ids=pattern_ids, at=at)
    return {
        pattern_id: build_snapshots(found, today, min_executions, at)
        for pattern_id, found in sorted(windows.items())
    }
