"""The demo's rating transitions: what this run recorded, and proof each was published once.

The worker records a transition in the batch that changes a pattern's rating or snapshot status
and one worker publishes it to ROI_RATINGS_TOPIC (docs/event-contract.md, "Rating
transitions"). The demo waits until every transition recorded since it started is marked sent,
then reads what the topic received in the meantime and checks that each (pattern_id,
sequence) is on it exactly once: the closed loop a confidence system relies on.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import psycopg

from ..db import ratings
from ..db.ratings import TransitionRow
from ..kafka.topic_range import PartitionRange, RangeReader, bounds, open_consumer
from ..settings import Settings
from .children import POLL_SECONDS, Child, DemoError

PUBLISHED_TIMEOUT_SECONDS: Final = 60.0
_READ_BATCH: Final = 500


def end_offsets(settings: Settings) -> dict[int, int]:
    """The end offset of every partition of the ratings topic."""
    with open_consumer(settings, "roi-worker-demo") as consumer:
        return {p: end for p, (_, end) in bounds(consumer, settings.ratings_topic).items()}


def wait_published(
    conn: psycopg.Connection[Any], since: datetime, worker: Child
) -> list[TransitionRow]:
    """The transitions recorded since `since`, once the publisher has sent them all."""
    deadline = time.monotonic() + PUBLISHED_TIMEOUT_SECONDS
    while True:
        recorded = ratings.recorded_since(conn, since)
        unsent = sum(row.sent_at is None for row in recorded)
        if not unsent:
            return recorded
        if time.monotonic() > deadline:
            raise DemoError(
                f"{unsent} rating transitions were not published within "
                f"{PUBLISHED_TIMEOUT_SECONDS:.0f} s; see {worker.log_path}"
            )
        worker.pause(POLL_SECONDS)


def published_since(settings: Settings, starts: Mapping[int, int]) -> Counter[tuple[str, int]]:
    """How often each (pattern_id, sequence) arrived on the ratings topic after `starts`."""
    topic = settings.ratings_topic
    seen: Counter[tuple[str, int]] = Counter()
    with open_consumer(settings, "roi-worker-demo") as consumer:
        ends = {p: end for p, (_, end) in bounds(consumer, topic).items()}
        ranges = [PartitionRange(p, starts.get(p, 0), end) for p, end in ends.items()]
        for batch in RangeReader(consumer, topic, ranges).batches(_READ_BATCH):
            for message in batch:
                event = json.loads(message.value or b"{}")
                seen[(str(event.get("pattern_id")), int(event.get("sequence", 0)))] += 1
    return seen


def check_once(recorded: Sequence[TransitionRow], seen: Counter[tuple[str, int]]) -> None:
    """Raises DemoError unless every recorded transition arrived exactly once."""
    wrong = [
        f"{row.pattern_id} #{row.sequence} ({seen[(row.pattern_id, row.sequence)]} times)"
        for row in recorded
        if seen[(row.pattern_id, row.sequence)] != 1
    ]
    if wrong:
        raise DemoError("the ratings topic does not hold each transition once: " + ", ".join(wrong))


def describe(row: TransitionRow) -> str:
    """`pattern #2: excellent -> failed (snapshot on_track)`, for the demo's output."""
    old = (
        "(first state)"
        if row.old_rating is None
        else _state(row.old_rating, row.old_snapshot_status)
    )
    return (
        f"{row.pattern_id} #{row.sequence}: {old} -> "
        f"{_state(row.new_rating, row.new_snapshot_status)}"
    )


def _state(rating: str, snapshot_status: str | None) -> str:
    return rating if snapshot_status is None else f"{rating}, snapshot {snapshot_status}"
