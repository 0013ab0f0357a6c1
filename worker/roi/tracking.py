"""What the report's summary shows beside the window's figures: the month to date and each
pattern's latest snapshot (docs/reports.md, "Month to date" and "Snapshots")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from .month_to_date import MonthToDate, read_month_to_date
from .snapshots import LatestSnapshot, read_latest


@dataclass(frozen=True, slots=True)
class Tracking:
    """Month to date at the report's time, and the latest snapshot of every pattern that has
    reached day 30 (a pattern missing from `latest` has not)."""

    month_to_date: MonthToDate
    latest: dict[str, LatestSnapshot]


def read_tracking(cur: psycopg.Cursor[Any], now: datetime, min_executions: int) -> Tracking:
    """Both, through `cur` (a `snapshot` cursor: four statements, one consistent state)."""
    return Tracking(
        month_to_date=read_month_to_date(cur, now),
        latest=read_latest(cur, now.date(), min_executions),
    )
