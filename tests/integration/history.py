"""A stored history of several patterns over the last 100 days, ending just before `now`, for
the snapshot and month-to-date tests: each pattern behaves so that its latest snapshot has a
known status, and every execution's figures are kept to recompute any window in Python."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from tests.api_harness import ApiProcess
from tests.fixtures.services import Services
from worker.consume.write import BatchWriter, ValidEvent
from worker.contract.validate import validate
from worker.db.migrate import load_migrations, migrate
from worker.roi.methodology import Totals
from worker.types import Source

# pattern_id -> the latest snapshot status its history is built to reach (None: too young).
EXPECTED_LATEST = {
    "steady": "on_track",  # saves $9 a run, every run succeeds, for 100 days
    "slipping": "at_risk",  # a quarter of its runs fail from day 30 on
    "losing": "off_track",  # most runs fail: a net loss
    "sparse": "insufficient_data",  # one run every 5 days
    "young": None,  # 10 days old
}
HOURS = (0, 9, 17)  # the first run of a day is at midnight exactly, to test the edges


@dataclass(frozen=True)
class Run:
    pattern_id: str
    executed_at: datetime
    success: bool

    @property
    def totals(self) -> Totals:
        return Totals.of_execution(
            success=self.success,
            execution_time_seconds=Decimal(30),
            estimated_time_seconds=Decimal(600),
            actual_cost=Decimal("1.00"),
            estimated_cost=Decimal("10.00"),
        )

    def document(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "pattern_id": self.pattern_id,
            "executed_at": self.executed_at.isoformat(),
            "success": self.success,
            "execution_time_seconds": 30,
            "estimated_time_seconds": 600,
            "actual_cost": "1.00",
            "estimated_cost": "10.00",
        }


def history(now: datetime) -> list[Run]:
    """The runs of EXPECTED_LATEST's patterns, all before `now`."""
    today = now.date()
    runs = []

    def daily(
        pattern_id: str, age: int, success: Any, every: int = 1, hours: tuple[int, ...] = HOURS
    ) -> None:
        for day_number in range(0, age + 1, every):
            day = today - timedelta(days=age - day_number)
            for index, hour in enumerate(hours):
                moment = datetime.combine(day, time(hour, 7 * index), UTC)
                if moment < now - timedelta(minutes=1):
                    runs.append(Run(pattern_id, moment, success(day_number, index)))

    daily("steady", 100, lambda d, i: True)
    daily("slipping", 70, lambda d, i: d < 30 or (d + i) % 4 != 0)
    daily("losing", 35, lambda d, i: i == 0 and d % 4 == 0)
    daily("sparse", 40, lambda d, i: True, every=5, hours=(9,))
    daily("young", 10, lambda d, i: True)
    return runs


def store(conn: psycopg.Connection[Any], runs: Iterable[Run], now: datetime) -> None:
    """Stores the runs through the worker's write stage, as consuming them would."""
    writer = BatchWriter(conn, "history")
    events = [validate(run.document(), now=now) for run in runs]
    items = [ValidEvent.of(event, Source("history", 0, n)) for n, event in enumerate(events)]
    for start in range(0, len(items), 500):
        result = writer.write(items[start : start + 500], {("history", 0): start + 500})
        assert not result.refused


def totals_between(
    runs: Iterable[Run], pattern_id: str | None, start: datetime, end: datetime
) -> Totals:
    """The totals of the runs of a pattern (any when None) executed in [start, end)."""
    return sum(
        (
            r.totals
            for r in runs
            if (pattern_id is None or r.pattern_id == pattern_id) and start <= r.executed_at < end
        ),
        Totals(),
    )


def totals_of_days(runs: Iterable[Run], pattern_id: str, first: date, end: date) -> Totals:
    """The totals of the runs of a pattern on the UTC days [first, end)."""
    return totals_between(runs, pattern_id, midnight(first), midnight(end))


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def day0(runs: Iterable[Run], pattern_id: str) -> date:
    return min(r.executed_at for r in runs if r.pattern_id == pattern_id).date()


def store_history(database_url: str, now: datetime) -> list[Run]:
    """Migrates the database at `database_url` and stores `history(now)` in it."""
    migrate(database_url, load_migrations())
    runs = history(now)
    with psycopg.connect(database_url, autocommit=True) as conn:
        store(conn, runs, now)
    return runs


@contextmanager
def read_only_api(
    services: Services, database_url: str, log: Path, env: Mapping[str, str] | None = None
) -> Iterator[ApiProcess]:
    """`roi-worker api` on `database_url` with writes off (and `env` besides), once ready."""
    process = ApiProcess(
        {
            "ROI_KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap_servers,
            "ROI_DATABASE_URL": database_url,
            "ROI_API_WRITES": "false",
            **(env or {}),
        },
        log,
    )
    try:
        process.wait_up("/readyz")
        yield process
    finally:
        process.close()
