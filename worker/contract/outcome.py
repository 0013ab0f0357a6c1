"""What came of an execution: contract v1's optional `outcome`, and how it agrees with `success`.

`success` says whether the run delivered the estimated value (the ROI methodology reads only
that); `outcome` says more about how it ended. Absent, it is derived from `success`, so every
event has one. Kept apart from the event model so that the ROI methodology, which counts
executions per outcome, can use it without loading pydantic.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

ExecutionOutcome = Literal["success", "failure", "partial_success", "error"]
"""success: it achieved its goal; failure: it ran and did not; partial_success: part of it;
error: it could not run (a crash, the infrastructure)."""

OUTCOMES: Final[tuple[ExecutionOutcome, ...]] = get_args(ExecutionOutcome)

# success -> the outcomes that agree with it; the first is the one an event without `outcome`
# gets. A partial success may or may not have delivered the estimated value: the producer says
# which through `success`.
ALLOWED: Final[dict[bool, tuple[ExecutionOutcome, ...]]] = {
    True: ("success", "partial_success"),
    False: ("failure", "error", "partial_success"),
}


def derived(success: bool) -> ExecutionOutcome:
    """The outcome of an event that does not say one: `success` or `failure`."""
    return ALLOWED[success][0]


def consistent(outcome: str, success: bool) -> bool:
    """Whether an event may carry both `outcome` and `success` (docs/event-contract.md)."""
    return outcome in ALLOWED[success]
