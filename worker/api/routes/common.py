"""What the routers share: the path prefixes, the documented error answers and access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from ..models import ErrorBody, ValidationProblem

ROI: Final = "/api/roi-tracking"
USAGE: Final = "/api/pattern-analytics"

Responses = dict[int | str, dict[str, Any]]


def documented(model: type[BaseModel], description: str) -> dict[str, Any]:
    """An answer as the OpenAPI document states it: its body's model and when it is sent."""
    return {"model": model, "description": description}


INVALID_PARAMETER: Final[Responses] = {
    422: documented(ValidationProblem, "A parameter breaks its rule; each problem is listed.")
}
DATABASE_UNAVAILABLE: Final[Responses] = {
    503: documented(ErrorBody, "PostgreSQL is unavailable; retry later.")
}
UNKNOWN_PATTERN: Final[Responses] = {
    404: documented(ErrorBody, "No execution of this pattern is stored.")
}
UNAUTHORIZED: Final[Responses] = {
    401: documented(ErrorBody, "No bearer token, or one that is not accepted (docs/api.md).")
}


@dataclass(frozen=True, slots=True)
class Access:
    """What an endpoint of a kind needs: its FastAPI dependencies and the answers they add."""

    dependencies: list[Any]
    protected: bool

    def responses(self, answers: Responses) -> Responses:
        """`answers`, with 401 when a token is needed."""
        return UNAUTHORIZED | answers if self.protected else answers
