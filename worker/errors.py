"""The error hierarchy, split by what the consuming loop does with an error.

- `InvalidEventError`: the event is bad; dead-letter it with its reason and go on.
- `RetryableError`: a dependency is unavailable; back off and keep the partition.
- `FatalError`: stop cleanly with a one-line message (bad configuration, refused migration).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class RoiWorkerError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidReason(StrEnum):
    """Why an event was rejected. Stable codes: dead-letter headers and metrics labels use them."""

    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    SCHEMA_VIOLATION = "schema_violation"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"  # event_id stored with other content
    DATABASE_REJECTED = "database_rejected"  # a constraint of the database refused the row
    UNDECODABLE_RECORD = "undecodable_record"  # the Kafka client cannot read the record at all


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: which field, which rule (a stable code), a message, the offending value.

    `value` is a short `repr` of what was received, or None when the field was missing.
    """

    field: str
    rule: str
    message: str
    value: str | None = None

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.field}: {self.message}"
        return f"{self.field}: {self.message} (got {self.value})"


class InvalidEventError(RoiWorkerError):
    """An event that breaks the contract. Never retried: it goes to the dead-letter topic."""

    def __init__(self, reason: InvalidReason, errors: tuple[FieldError, ...]) -> None:
        self.reason = reason
        self.errors = errors
        super().__init__(f"{reason}: " + "; ".join(str(error) for error in errors))

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields named by the errors, in order."""
        return tuple(error.field for error in self.errors)

    @property
    def rules(self) -> str:
        """`field:rule` of every error, comma-separated: the machine-readable summary."""
        return ",".join(f"{error.field}:{error.rule}" for error in self.errors)


class RetryableError(RoiWorkerError):
    """A dependency is unavailable for now; the same work may succeed later.

    `outage` says which, without the details (addresses, users, libpq's words) that only the
    log shows: it is what /readyz, served to anyone who can reach the pod, answers.
    """

    outage: ClassVar[str] = "a dependency is unavailable"


class DatabaseUnavailableError(RetryableError):
    """PostgreSQL cannot be reached (refused, timed out, authentication failed)."""

    outage = "PostgreSQL is unavailable"


class LockWaitError(RetryableError):
    """A row another transaction holds kept a batch waiting past lock_timeout (a frozen or
    slow peer, an operator's lock): the batch was rolled back and can be stored again."""

    outage = "rows are locked by another transaction"


class BrokerUnavailableError(RetryableError):
    """Kafka did not take or acknowledge a write in time (dead letters, commits)."""

    outage = "Kafka is unavailable"


class SummariesBusyError(RetryableError):
    """rebuild-summaries could not lock the summary tables in time; nothing was changed."""

    outage = "the summary tables are locked by a rebuild"


class FatalError(RoiWorkerError):
    """Stop: retrying cannot help until an operator acts. The message says what to do."""


class ConfigurationError(FatalError):
    """A setting is missing or invalid. The message names the environment variable."""


class MigrationError(FatalError):
    """The schema cannot be brought up to date safely (changed, unknown or failing migration)."""


class SchemaOutdatedError(FatalError):
    """A table or column the code uses is missing: the schema is older than this release."""

    public: ClassVar[str] = "the database schema is not up to date: run `roi-worker migrate`"


class CircuitOpenError(FatalError):
    """Too many invalid messages in a row: stop consuming rather than flood the dead-letter
    topic. `partitions`: where the invalid messages came from; `ratio`: their share."""

    def __init__(
        self, message: str, *, partitions: tuple[tuple[str, int], ...] = (), ratio: float = 1.0
    ) -> None:
        super().__init__(message)
        self.partitions = partitions
        self.ratio = ratio
