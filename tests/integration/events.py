"""Execution events for pipeline tests, with the figures the summaries must reach."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from worker.contract import json_codec

BASE_TIME = datetime(2026, 10, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Sample:
    document: dict[str, Any]

    @property
    def key(self) -> bytes:
        return str(self.document["pattern_id"]).encode()

    @property
    def value(self) -> bytes:
        return json_codec.dumps(self.document).encode()

    @property
    def message(self) -> tuple[bytes, bytes]:
        return self.key, self.value


def sample_events(count: int, patterns: int = 5, seed: int = 7) -> list[Sample]:
    """`count` valid events over `patterns` patterns, money with cents, some failures."""
    rng = random.Random(seed)
    samples = []
    for index in range(count):
        samples.append(
            Sample(
                {
                    "schema_version": 1,
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "pattern_id": f"pattern-{index % patterns}",
                    "executed_at": (BASE_TIME + timedelta(seconds=37 * index)).isoformat(),
                    "success": rng.random() < 0.8,
                    "execution_time_seconds": Decimal(rng.randint(1, 9000)) / 100,
                    "estimated_time_seconds": rng.randint(60, 900),
                    "actual_cost": str(Decimal(rng.randint(0, 500)) / 100),
                    "estimated_cost": str(Decimal(rng.randint(100, 5000)) / 100),
                }
            )
        )
    return samples


def expected_summary(samples: list[Sample]) -> dict[str, tuple[int, int, Decimal, Decimal]]:
    """pattern_id -> (executions, successes, time saved, cost saved), by the methodology."""
    totals: dict[str, tuple[int, int, Decimal, Decimal]] = {}
    for sample in samples:
        doc = sample.document
        success = bool(doc["success"])
        run_time = Decimal(doc["execution_time_seconds"])
        cost = Decimal(doc["actual_cost"])
        time_saved = Decimal(doc["estimated_time_seconds"]) - run_time if success else -run_time
        cost_saved = Decimal(doc["estimated_cost"]) - cost if success else -cost
        n, ok, t, c = totals.get(doc["pattern_id"], (0, 0, Decimal(0), Decimal(0)))
        totals[doc["pattern_id"]] = (n + 1, ok + success, t + time_saved, c + cost_saved)
    return totals
