"""The browser tests' known data set: six patterns, one of each rating, over the last 120 days,
stored through the worker's write stage (BatchWriter) as consuming them would.

Each pattern's runs cost the same and succeed in a fixed rhythm, so its rating and ROI are
known: ROI = 100 * (success rate * estimated cost / actual cost - 1). The ROI strings sort
differently as text and as numbers ("900" > "260" as text, "1100" < "900"), so a table that
sorts them as text fails the sorting test. Runs happen at fixed clock times of their day, never
at midnight, so that the windows month to date compares (which end at the current instant) move
over a run only a few times a day.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

import psycopg

from worker.consume.write import BatchWriter, ValidEvent
from worker.contract.validate import validate
from worker.db import offsets
from worker.types import Source

SOURCE_TOPIC: Final = "browser-dataset"
GROUP: Final = "browser-tests"
DAYS: Final = 120  # the oldest pattern's age: "all time" plots this many days
CLOCK: Final = (time(3, 17), time(11, 41), time(19, 5))  # when a pattern runs on its days


@dataclass(frozen=True)
class PatternPlan:
    """How one pattern behaves: `successes` of every 20 runs succeed, each run costs
    `actual_cost` and was estimated at `estimated_cost` (USD strings)."""

    pattern_id: str
    rating: str
    days: int  # it ran on each of the last `days` days (today included), ...
    runs_per_day: int  # ... at the first `runs_per_day` times of CLOCK
    successes: int  # of every 20 runs
    actual_cost: str
    estimated_cost: str
    skip_today: bool = False


PLANS: Final = (
    PatternPlan("deploy-preview", "excellent", DAYS, 3, 20, "0.42", "4.20"),  # ROI 900 %
    PatternPlan("lint-fix", "good", 60, 2, 18, "1.10", "4.40"),  # 260 %
    PatternPlan("doc-sync", "acceptable", 45, 2, 15, "0.80", "2.00"),  # 87.5 %
    PatternPlan("flaky-tests", "poor", 35, 3, 12, "2.25", "4.50"),  # 20 %
    PatternPlan("migrate-db", "failed", 40, 2, 6, "3.00", "6.00"),  # -40 %
    # Five runs, too few to be rated; its id holds a slash, a path segment of its own.
    PatternPlan("team/new-idea", "insufficient_data", 5, 1, 20, "0.05", "0.60", skip_today=True),
)
EXPECTED_RATINGS: Final = {plan.pattern_id: plan.rating for plan in PLANS}
UNDERPERFORMERS: Final = frozenset({"flaky-tests", "migrate-db"})


@dataclass(frozen=True)
class Run:
    """One execution of the data set."""

    plan: PatternPlan
    executed_at: datetime
    success: bool
    number: int  # of its pattern, from 0

    def document(self) -> dict[str, Any]:
        """The contract-v1 event, with outcomes, quality and tokens for the pattern page."""
        if self.success:
            outcome = "partial_success" if self.number % 7 == 3 else "success"
        else:
            outcome = "error" if self.number % 3 == 0 else "failure"
        return {
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "pattern_id": self.plan.pattern_id,
            "executed_at": self.executed_at.isoformat(),
            "success": self.success,
            "outcome": outcome,
            "execution_time_seconds": 40 + self.number % 50,
            "estimated_time_seconds": 900,
            "actual_cost": self.plan.actual_cost,
            "estimated_cost": self.plan.estimated_cost,
            "quality_score": Decimal("0.9") if self.success else Decimal("0.35"),
            "actual_tokens": 1200 + 10 * (self.number % 30),
            "baseline_tokens": 4000,
        }


def runs(now: datetime) -> list[Run]:
    """Every run of PLANS, all before `now` (a minute at least)."""
    today = now.date()
    found = []
    for plan in PLANS:
        number = 0
        last = today - timedelta(days=1) if plan.skip_today else today
        for age in range(plan.days - 1, -1, -1):
            day = last - timedelta(days=age)
            for clock in CLOCK[: plan.runs_per_day]:
                moment = datetime.combine(day, clock, UTC)
                if moment >= now - timedelta(minutes=1):
                    continue
                found.append(Run(plan, moment, number % 20 < plan.successes, number))
                number += 1
    return found


def first_day(now: datetime) -> date:
    """The UTC day of the data set's oldest run."""
    return now.date() - timedelta(days=DAYS - 1)


class Store:
    """Writes events into one database through the worker's write stage, as if read from
    partition 0 of SOURCE_TOPIC, from the offset the database has stored for it on (so that
    every Store of a database continues the last one's offsets)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._writer = BatchWriter(conn, GROUP)
        stored = offsets.load(conn, GROUP, [SOURCE_TOPIC]).get((SOURCE_TOPIC, 0))
        self._next_offset = 0 if stored is None else stored.next_offset

    def write(self, documents: Iterable[dict[str, Any]], now: datetime) -> int:
        """Stores the events; returns how many were inserted (all of them, or the test fails)."""
        events = [validate(document, now=now) for document in documents]
        inserted = 0
        for start in range(0, len(events), 500):
            chunk = events[start : start + 500]
            items = [
                ValidEvent.of(event, Source(SOURCE_TOPIC, 0, self._next_offset + n))
                for n, event in enumerate(chunk)
            ]
            self._next_offset += len(items)
            result = self._writer.write(items, {(SOURCE_TOPIC, 0): self._next_offset})
            assert not result.refused, result.refused
            inserted += len(result.inserted)
        assert inserted == len(events), f"{len(events) - inserted} of the events were not new"
        return inserted


def one_more_run(now: datetime) -> dict[str, Any]:
    """A new successful run of lint-fix, a few seconds before `now`: what the live test stores."""
    plan = next(p for p in PLANS if p.pattern_id == "lint-fix")
    return Run(plan, now - timedelta(seconds=5), True, 0).document()
