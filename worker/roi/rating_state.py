"""A pattern's rating state, when it changes, and the `pattern-rating-changed` event v1.

Pure: no I/O. The state of a pattern is its rating over all time (worker.roi.methodology.rate)
and the status of its latest snapshot (worker.roi.snapshots; None before its first snapshot).
`changes` compares the states just computed with those recorded and gives the transitions to
record, each with the next sequence number of its pattern; `event_of` turns a recorded
transition into the event published to ROI_RATINGS_TOPIC (docs/event-contract.md, "Rating
transitions"). The same transition always gives the same event, so a re-send is identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field

from .formatting import round_half_up
from .methodology import Rating, Totals, rate, wilson_lower_bound
from .report_document import PLACES, Dec

EVENT_SCHEMA_VERSION: Final = 1
EVENT_TYPE: Final = "pattern-rating-changed"
# The statuses of DESIGN.md's snapshots (worker.roi.snapshots.SnapshotStatus has the same values).
SnapshotStatusName = Literal["on_track", "at_risk", "off_track", "insufficient_data"]
SNAPSHOT_STATUSES: Final[tuple[str, ...]] = get_args(SnapshotStatusName)


class PatternState(NamedTuple):
    """What the confidence system learns about a pattern: a change of either is a transition."""

    rating: Rating
    snapshot_status: str | None  # None: no snapshot yet (before day 30)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A pattern's state as last recorded, and the sequence of the transition that set it."""

    state: PatternState
    sequence: int


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a pattern's state: its `sequence` is the previous one's + 1 (1 for the
    first state, whose `old` is None). `totals` are the pattern's all-time figures at the
    change; `occurred_at` is set once it is recorded (the recording transaction's time)."""

    pattern_id: str
    sequence: int
    old: PatternState | None
    new: PatternState
    totals: Totals
    occurred_at: datetime | None = None


def state_of(totals: Totals, snapshot_status: str | None, min_executions: int) -> PatternState:
    """The state of a pattern with these all-time totals and latest snapshot status (a
    SnapshotStatus or its value)."""
    status = None if snapshot_status is None else str(snapshot_status)
    return PatternState(rate(totals, min_executions), status)


def changes(
    current: Mapping[str, tuple[PatternState, Totals]], recorded: Mapping[str, Recorded]
) -> list[Transition]:
    """The transitions that take `recorded` to `current`, in pattern_id order (the order their
    rows are locked in): one per pattern whose state differs, or has none recorded yet."""
    found = []
    for pattern_id in sorted(current):
        state, totals = current[pattern_id]
        before = recorded.get(pattern_id)
        if before is not None and before.state == state:
            continue
        found.append(
            Transition(
                pattern_id=pattern_id,
                sequence=1 if before is None else before.sequence + 1,
                old=None if before is None else before.state,
                new=state,
                totals=totals,
            )
        )
    return found


# --------------------------------------------------------------------------- the event


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RatingStateBody(_Model):
    """A pattern's state: its rating and its latest snapshot's status."""

    rating: Rating
    snapshot_status: SnapshotStatusName | None = Field(
        description="status of the latest 30/60/90-day snapshot; null before day 30"
    )


class TransitionFigures(_Model):
    """The pattern's all-time figures when the state changed. Counts and sums are exact; the
    rates are rounded half up to six decimal places."""

    executions: int = Field(ge=0)
    successful_executions: int = Field(ge=0)
    success_rate: Dec | None = Field(description="successful / all executions, 0..1")
    wilson_lower_bound: Dec | None = Field(description="95 % Wilson lower bound of success_rate")
    cost_saved_usd: Dec = Field(description="net USD saved (exact)")
    investment_usd: Dec = Field(description="sum of actual_cost (exact)")
    roi_percentage: Dec | None = Field(description="100 * cost saved / investment; null: 0 spent")


class PatternRatingChanged(_Model):
    """Event `pattern-rating-changed` v1, published to ROI_RATINGS_TOPIC with key = pattern_id.

    At least once: a consumer keeps the highest `sequence` it applied per pattern and ignores
    any event at or below it. Sequences start at 1 (the pattern's first state, `old` null) and
    have no gaps.
    """

    schema_version: Literal[1] = EVENT_SCHEMA_VERSION
    event_type: Literal["pattern-rating-changed"] = EVENT_TYPE
    pattern_id: str = Field(min_length=1, max_length=200)
    sequence: int = Field(ge=1, description="per pattern: 1, 2, 3, ... without gaps")
    occurred_at: datetime = Field(description="when the change was recorded (RFC 3339, UTC)")
    old: RatingStateBody | None = Field(description="null for the pattern's first state")
    new: RatingStateBody
    figures: TransitionFigures
    recommendation: str = Field(description="what the new rating recommends")


def _rounded(value: Decimal | None) -> Decimal | None:
    return None if value is None else round_half_up(value, PLACES)


def _body(state: PatternState) -> RatingStateBody:
    return RatingStateBody.model_validate(
        {"rating": state.rating, "snapshot_status": state.snapshot_status}
    )


def event_of(transition: Transition) -> PatternRatingChanged:
    """The event of a recorded transition (ValueError if it has no `occurred_at` yet)."""
    if transition.occurred_at is None:
        raise ValueError("a transition is published only once recorded")
    totals = transition.totals
    return PatternRatingChanged(
        pattern_id=transition.pattern_id,
        sequence=transition.sequence,
        occurred_at=transition.occurred_at.astimezone(UTC),
        old=None if transition.old is None else _body(transition.old),
        new=_body(transition.new),
        figures=TransitionFigures(
            executions=totals.executions,
            successful_executions=totals.successful_executions,
            success_rate=_rounded(totals.success_rate),
            wilson_lower_bound=_rounded(
                wilson_lower_bound(totals.successful_executions, totals.executions)
            ),
            cost_saved_usd=totals.cost_saved_usd,
            investment_usd=totals.investment_usd,
            roi_percentage=_rounded(totals.roi_percentage),
        ),
        recommendation=transition.new.rating.recommendation,
    )


def event_json(transition: Transition) -> dict[str, Any]:
    """The event as a JSON object (decimals as strings, occurred_at as RFC 3339)."""
    return event_of(transition).model_dump(mode="json")


def event_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the event, as published in schemas/."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:roi-worker:schema:pattern-rating-changed:v1",
        **PatternRatingChanged.model_json_schema(mode="serialization"),
    }
