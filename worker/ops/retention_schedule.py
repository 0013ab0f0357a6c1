"""ROI_RETENTION_DAYS: the workers apply retention themselves, once a day, one at a time.

Every ROI_RETENTION_CHECK_SECONDS each worker asks whether today's horizon (00:00 UTC,
ROI_RETENTION_DAYS days ago) is recorded yet. The first to find it is not, and to take the
retention advisory lock, applies it (worker.ops.retention: the same steps as `roi-worker retention
--execute`); the others find the lock taken, or the horizon recorded, and do nothing. So the
horizon moves one day a day, whichever replicas run, and a failed run is tried again at the next
check. It runs on a thread of its own with its own connection: consuming goes on meanwhile.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from ..db import connect as db
from ..errors import RoiWorkerError
from ..settings import Settings
from .retention import (
    RetentionResult,
    apply_retention,
    current_horizon,
    horizon_for,
    retention_lock,
)

log = logging.getLogger(__name__)


class RetentionSchedule:
    """Checks now and then whether retention is due, and applies it when this worker wins."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        if settings.retention_days is None:
            raise ValueError("ROI_RETENTION_DAYS is not set")
        self._days = settings.retention_days
        self._every = settings.retention_check_seconds
        self._url = settings.database_url.get_secret_value()
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name="roi-retention", daemon=True)

    def start(self) -> None:
        log.info(
            "retention: raw executions older than %d days go, checked every %g s",
            self._days,
            self._every,
        )
        self._thread.start()

    def check(self, today: datetime | None = None) -> RetentionResult | None:
        """Applies retention if it is due and no other worker is applying it; returns what it
        did (None: nothing to do here)."""
        horizon = horizon_for(self._days, (today or datetime.now(UTC)).date())
        with (
            db.connect(self._url, autocommit=True, application_name="roi-worker retention") as conn,
            db.errors(),
        ):
            recorded = current_horizon(conn)
            if recorded is not None and recorded >= horizon:
                return None
            with retention_lock(conn, wait=False) as mine:
                if not mine:
                    log.info("retention: another replica is applying it")
                    return None
                result = apply_retention(conn, horizon)
        log.info(
            "retention: deleted %d raw executions from before %s (the summaries still count them)",
            result.deleted,
            f"{result.horizon.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
        )
        return result

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except RoiWorkerError as exc:  # the next check tries again
                log.warning("retention failed: %s; trying again in %g s", exc, self._every)
            self._stop.wait(self._every)
