"""`roi-worker ratings`: the recorded rating transitions (worker/db/ratings.py), as text or as
the pattern-rating-changed events they are published as (docs/event-contract.md)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC
from typing import Any

from .args import positive_int
from .exits import EXIT_OK

DEFAULT_LIMIT = 50


def register(commands: Any) -> None:
    """Adds `ratings` to the `roi-worker` subcommands."""
    ratings_cmd = commands.add_parser(
        "ratings",
        help="list the recorded rating transitions and whether each was published",
        description="Lists the latest rating transitions recorded in PostgreSQL (a pattern's "
        "rating or latest snapshot status changed), oldest first, with whether the broker "
        "acknowledged each on ROI_RATINGS_TOPIC. --format json prints one "
        "pattern-rating-changed event per line, as published (plus `sent_at`). Needs "
        "ROI_DATABASE_URL.",
    )
    ratings_cmd.add_argument("--pattern-id", metavar="ID", help="only this pattern's transitions")
    ratings_cmd.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIMIT,
        help=f"the latest N transitions (default {DEFAULT_LIMIT})",
    )
    ratings_cmd.add_argument("--format", choices=("text", "json"), default="text")
    ratings_cmd.set_defaults(handler=_ratings)


def _ratings(args: argparse.Namespace) -> int:
    from ..consume.ratings import transition_of
    from ..db import ratings
    from ..db.connect import connect
    from ..roi.rating_state import event_json
    from ..settings import load_settings

    settings = load_settings()
    with connect(settings.database_url.get_secret_value()) as conn:
        rows = ratings.latest(conn, args.pattern_id, args.limit)
    if args.format == "json":
        for row in rows:
            event = event_json(transition_of(row))
            sent = None if row.sent_at is None else row.sent_at.isoformat()
            print(json.dumps({**event, "sent_at": sent}, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("no rating transitions recorded" + _of(args.pattern_id))
        return EXIT_OK
    for row in rows:
        old = (
            "(first)" if row.old_rating is None else _state(row.old_rating, row.old_snapshot_status)
        )
        sent = "unsent" if row.sent_at is None else "sent"
        when = "" if row.occurred_at is None else f"{row.occurred_at.astimezone(UTC):%F %T} UTC"
        print(
            f"{when}  {row.pattern_id} #{row.sequence}: {old} -> "
            f"{_state(row.new_rating, row.new_snapshot_status)}  "
            f"({row.executions} executions)  {sent}"
        )
    return EXIT_OK


def _state(rating: str, snapshot_status: str | None) -> str:
    return f"{rating}/{snapshot_status or 'no snapshot'}"


def _of(pattern_id: str | None) -> str:
    return "" if pattern_id is None else f" for {pattern_id}"
