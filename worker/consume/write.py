"""Stage 3, write: one PostgreSQL transaction per batch, exactly-once by construction.

In one transaction: COPY the batch's valid events into a session-private staging table, insert
them into pattern_executions with ON CONFLICT (event_id) DO NOTHING, add only the rows actually
inserted to pattern_roi_summary and pattern_roi_daily (in key order, so concurrent workers cannot
deadlock), record the rating transitions of the patterns whose summaries changed
(worker/consume/ratings.py, state rows in the same key order), and store the next offset of
every partition in consumer_offsets, with the offset ledger's row for each
(worker/db/ledger.py: the range of offsets and what became of each). A re-delivered event
therefore changes nothing, and the stored offsets say exactly what has been stored.

An event whose event_id is already stored with other content is a conflicting duplicate; a row
the database refuses (a data or constraint error) is isolated by splitting the batch under
savepoints. Both are handed to `before_commit`, which dead-letters them before the transaction
commits, so a crash in between re-delivers them instead of losing them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final, NamedTuple

import psycopg
from psycopg import errors as pg_errors
from psycopg.types.string import BytesDumper

from ..contract import json_codec
from ..contract.event import ExecutionEvent
from ..contract.outcome import derived
from ..db import connect as db
from ..db import ledger, offsets
from ..db.connect import first_line
from ..errors import InvalidReason
from ..roi.methodology import DEFAULT_MIN_EXECUTIONS
from ..roi.summaries import DAILY, SUMMARY, WITH_SAVINGS
from ..types import Partition, Source
from .ratings import record_changes

log = logging.getLogger(__name__)

STAGING_TABLE: Final = "roi_staging"

# Every field of the event contract is a column of pattern_executions under its own name: a
# field added to ExecutionEvent is stored (its migration must add the column, and
# COLUMN_TYPES name its type; tests/integration/test_migrate.py and test_write_copy.py check
# both) unless listed here, on purpose, as not stored.
NOT_STORED: Final[frozenset[str]] = frozenset()
EVENT_COLUMNS: Final = tuple(name for name in ExecutionEvent.model_fields if name not in NOT_STORED)
# `outcome` is stored resolved (derived from `success` when the event has none), never null:
# it follows the event's other columns, which _row reads with one attrgetter.
_READ_COLUMNS: Final = tuple(name for name in EVENT_COLUMNS if name != "outcome")
# The columns COPY fills, in order (see _row): the event's, then what the worker adds.
COLUMNS: Final = (
    *_READ_COLUMNS,
    "outcome",
    "unknown_fields",
    "content_sha256",
    "source_topic",
    "source_partition",
    "source_offset",
)
# The type of each column of pattern_executions COPY fills, as migrations/ define them.
COLUMN_TYPES: Final = {
    "schema_version": "int2",
    "event_id": "uuid",
    "pattern_id": "text",
    "executed_at": "timestamptz",
    "success": "bool",
    "execution_time_seconds": "numeric",
    "estimated_time_seconds": "numeric",
    "actual_cost": "numeric",
    "estimated_cost": "numeric",
    "workflow_id": "text",
    "error_message": "text",
    "correlation_id": "text",
    "quality_score": "numeric",
    "actual_tokens": "int8",
    "baseline_tokens": "int8",
    "source": "text",
    "attributes": "jsonb",
    "outcome": "text",
    "unknown_fields": "jsonb",
    "content_sha256": "bytea",
    "source_topic": "text",
    "source_partition": "int4",
    "source_offset": "int8",
}
# COPY declares its columns' types (Copy.set_types), so that psycopg picks each column's
# dumper once per COPY instead of once per value by its Python type. The jsonb columns come as
# JSON text (_row): declared text, they go as the same text, and the server reads each column
# as its own type. Text COPY, not binary: psycopg's binary numeric dumper costs three times its
# text one, four times a row, more than binary saves on the timestamp and the UUID.
_COPY_TYPES: Final = tuple(
    "text" if COLUMN_TYPES[name] == "jsonb" else COLUMN_TYPES[name] for name in COLUMNS
)
_EVENT_VALUES: Final = attrgetter(*_READ_COLUMNS)
_ATTRIBUTES: Final = _READ_COLUMNS.index("attributes")
_DERIVED_OUTCOME: Final = {success: derived(success) for success in (True, False)}
_COLUMN_LIST: Final = ", ".join(COLUMNS)

_CREATE_STAGING: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} "
    "(LIKE pattern_executions INCLUDING DEFAULTS INCLUDING CONSTRAINTS) ON COMMIT DELETE ROWS"
)
_DROP_STAGING: Final = f"DROP TABLE IF EXISTS {STAGING_TABLE}"
_COPY: Final = f"COPY {STAGING_TABLE} ({_COLUMN_LIST}) FROM STDIN"

# Executions before the retention horizon were deleted (docs/operations.md#retention): one
# arriving now is expired, neither stored nor counted, so a replay cannot count it twice.
_HORIZON: Final = "(SELECT coalesce(max(horizon), '-infinity'::timestamptz) FROM retention_horizon)"

# Inserts in event_id order (concurrent workers with overlapping batches wait, never deadlock),
# then adds the aggregate of exactly the inserted rows to both summary tables.
_INSERT: Final = f"""
WITH inserted AS (
    INSERT INTO pattern_executions ({_COLUMN_LIST})
    SELECT {_COLUMN_LIST} FROM {STAGING_TABLE} WHERE executed_at >= {_HORIZON} ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, {WITH_SAVINGS}
), summary AS (
    {SUMMARY.increment_sql("inserted")}
), daily AS (
    {DAILY.increment_sql("inserted")}
)
SELECT event_id::text FROM inserted
"""

_CLEAR_STAGING: Final = f"DELETE FROM {STAGING_TABLE}"

_STORED_FINGERPRINTS: Final = (
    "SELECT event_id, content_sha256 FROM pattern_executions WHERE event_id = ANY(%s)"
)
_RETENTION_HORIZON: Final = "SELECT max(horizon) FROM retention_horizon"


class ValidEvent(NamedTuple):
    """An event that passed validation, with its content fingerprint and its source."""

    event: ExecutionEvent
    source: Source
    fingerprint: bytes

    @classmethod
    def of(cls, event: ExecutionEvent, source: Source) -> ValidEvent:
        return cls(event, source, event.fingerprint())


@dataclass(frozen=True, slots=True)
class Refused:
    """A valid event the write stage could not store: it goes to the dead-letter topic."""

    item: ValidEvent
    reason: InvalidReason
    message: str


@dataclass(slots=True)
class WriteResult:
    """What became of each event of a batch."""

    inserted: list[ValidEvent] = field(default_factory=list)
    duplicates: list[ValidEvent] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    expired: list[ValidEvent] = field(default_factory=list)  # older than the retention horizon


def _no_hook(result: WriteResult) -> None:
    del result


class BatchWriter:
    """Writes batches over one connection (autocommit mode; each batch is one transaction).

    `min_executions` (ROI_MIN_EXECUTIONS) rates the patterns whose rating transitions the
    batches record (worker.consume.ratings); every writer of a database must use the same."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        group_id: str,
        *,
        min_executions: int = DEFAULT_MIN_EXECUTIONS,
    ) -> None:
        self._conn = conn
        self._group_id = group_id
        self._min_executions = min_executions
        self._staging_ready = False

    def write(
        self,
        events: Sequence[ValidEvent],
        next_offsets: Mapping[Partition, int],
        before_commit: Callable[[WriteResult], None] = _no_hook,
        *,
        dead_lettered: Sequence[ledger.Position] = (),
        starts: Mapping[Partition, int] | None = None,
    ) -> WriteResult:
        """Stores a batch, the next offset of each partition in it and their offset ledger
        rows, atomically.

        `dead_lettered`: where the batch's messages that failed decode or validation came
        from (the ledger counts them; a message neither there nor in `events` counts as
        skipped). `starts`: where the reader began partitions it has not stored before (a
        replay's first batch of each); otherwise a range begins at the stored offset.
        `before_commit` runs inside the transaction once the outcome is known; if it raises,
        nothing is stored. Raises DatabaseUnavailableError when PostgreSQL cannot be used.
        """
        unique, result = _dedupe_batch(events)
        with _database_errors(), self._conn.transaction():
            if not self._staging_ready:
                self._conn.execute(_CREATE_STAGING)
            self._store(unique, result)
            if result.inserted:  # right after the summary increments, holding their rows
                patterns = set(map(_PATTERN_ID, result.inserted))
                record_changes(self._conn, patterns, self._min_executions)
            _expire_repeats(result)
            self._save_offsets(next_offsets, result, dead_lettered, starts)
            before_commit(result)
        self._staging_ready = True  # only now: a rollback also undoes CREATE TEMP TABLE
        return result

    def preview(self, events: Sequence[ValidEvent]) -> WriteResult:
        """What `write` would make of these events, read only: nothing is written.

        Rows a database constraint would refuse cannot be told without writing them: they
        count as inserted here.
        """
        unique, result = _dedupe_batch(events)
        with _database_errors():
            row = self._conn.execute(_RETENTION_HORIZON).fetchone()
            stored = self._stored_fingerprints(unique)
        horizon = row[0] if row else None
        _classify_stored([item for item in unique if item.event.event_id in stored], stored, result)
        for item in unique:
            if item.event.event_id in stored:
                continue
            if horizon is not None and item.event.executed_at < horizon:
                result.expired.append(item)
            else:
                result.inserted.append(item)
        _expire_repeats(result)
        return result

    def ping(self) -> None:
        """Raises DatabaseUnavailableError unless the connection still works."""
        with _database_errors():
            self._conn.execute("SELECT 1")

    def _store(self, events: list[ValidEvent], result: WriteResult) -> None:
        if not events:
            return
        refused_before = len(result.refused)
        try:
            with self._conn.transaction():  # a savepoint
                staged = self._stage(events, result)
                if staged:
                    self._insert_staged(staged, result)
            return
        except (pg_errors.DataError, pg_errors.IntegrityError):
            # A rule only pattern_executions has (a constraint added after this session made
            # its staging table, a trigger): find the rows it refuses the slow way.
            del result.refused[refused_before:]
        log.warning("a row passed the staging table but not pattern_executions; isolating it")
        self._store_in_chunks(events, result)

    def _stage(
        self, events: list[ValidEvent], result: WriteResult, *, remade: bool = False
    ) -> list[ValidEvent]:
        """COPYs the events into the staging table, whose constraints are those of
        pattern_executions. A refused COPY is split until each refused row stands alone: one
        bad row costs about 2*log2(batch size) small statements on a private table, takes no
        shared lock, and never blocks its partition.

        The staging table copied the constraints when this session made it. Before refusing a
        row, it is made again from the current pattern_executions and the batch staged once
        more, so that a rule an operator relaxed since (the fix before a redrive) no longer
        refuses anything."""
        staged: list[ValidEvent] = []
        refused: list[Refused] = []
        for chunk, error in self._bisect(events, self._copy):
            if error is None:
                staged += chunk
            else:
                refused.append(_refused(chunk[0], error))
        if refused and not remade:
            self._conn.execute(_DROP_STAGING)
            self._conn.execute(_CREATE_STAGING)
            return self._stage(events, result, remade=True)
        result.refused += refused
        return staged

    def _store_in_chunks(self, events: list[ValidEvent], result: WriteResult) -> None:
        def insert(chunk: list[ValidEvent]) -> None:
            self._copy(chunk)
            outcome = WriteResult()
            self._insert_staged(chunk, outcome)
            self._conn.execute(_CLEAR_STAGING)  # for the next chunk
            # Counted only once nothing in the chunk's savepoint can fail any more.
            result.inserted += outcome.inserted
            result.duplicates += outcome.duplicates
            result.refused += outcome.refused
            result.expired += outcome.expired

        # Chunks lock summary rows out of key order: a deadlock with another worker is
        # possible here, and is retried like any other database failure.
        for chunk, error in self._bisect(events, insert):
            if error is not None:
                result.refused.append(_refused(chunk[0], error))

    def _bisect(
        self, events: list[ValidEvent], attempt: Callable[[list[ValidEvent]], None]
    ) -> Iterator[tuple[list[ValidEvent], Exception | None]]:
        """Runs `attempt` on the events under savepoints, halving a chunk that fails with a
        data error; yields each chunk that succeeded, and each single event that failed."""
        chunks = [events]
        while chunks:
            chunk = chunks.pop()
            try:
                with self._conn.transaction():
                    attempt(chunk)
            except (pg_errors.DataError, pg_errors.IntegrityError) as exc:
                if len(chunk) > 1:
                    middle = len(chunk) // 2
                    chunks += [chunk[middle:], chunk[:middle]]
                else:
                    yield chunk, exc
                continue
            yield chunk, None

    def _copy(self, chunk: list[ValidEvent]) -> None:
        with self._conn.cursor() as cur:
            # Declared bytea, psycopg would pick DB-API's Binary dumper, written in Python;
            # this is the one it picks for a `bytes` value, in C: the same text, cheaper.
            cur.adapters.register_dumper(None, BytesDumper)
            with cur.copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                for item in chunk:
                    copy.write_row(_row(item))

    def _insert_staged(self, staged: list[ValidEvent], result: WriteResult) -> None:
        """Inserts the staged rows (`staged`) and increments the summaries by those inserted.
        The others are already stored (duplicates, or conflicts when their content differs)
        or expired: older than the retention horizon, so the insert skipped them."""
        # As text: psycopg makes a uuid.UUID of each in Python, and all the usual case needs
        # is how many there are.
        rows = self._conn.execute(_INSERT).fetchall()
        if len(rows) == len(staged):  # the usual case: nothing more to ask
            result.inserted += staged
            return
        inserted = {row[0] for row in rows}
        others: list[ValidEvent] = []
        for item in staged:
            (result.inserted if str(item.event.event_id) in inserted else others).append(item)
        _classify_stored(others, self._stored_fingerprints(others), result)

    def _stored_fingerprints(self, items: list[ValidEvent]) -> dict[Any, bytes | None]:
        ids = [item.event.event_id for item in items]
        rows = self._conn.execute(_STORED_FINGERPRINTS, (ids,)).fetchall()
        return {event_id: None if sha is None else bytes(sha) for event_id, sha in rows}

    def _save_offsets(
        self,
        next_offsets: Mapping[Partition, int],
        result: WriteResult,
        dead_lettered: Sequence[ledger.Position],
        starts: Mapping[Partition, int] | None,
    ) -> None:
        """Stores the next offsets and the batch's offset ledger rows (worker/db/offsets.py)."""
        offsets.save_forward(
            self._conn,
            self._group_id,
            next_offsets,
            lambda: _outcomes(result, dead_lettered),
            starts=starts,
        )


_PATTERN_ID: Final = attrgetter("event.pattern_id")
_SOURCE: Final = attrgetter("source")
_REFUSED_SOURCE: Final = attrgetter("item.source")
_INDEX: Final = {name: index for index, name in enumerate(ledger.OUTCOMES)}


def _outcomes(result: WriteResult, dead_lettered: Sequence[ledger.Position]) -> ledger.Outcomes:
    """The sources of the batch's messages by outcome, as ledger.tally counts them."""
    conflicts = [r for r in result.refused if r.reason is InvalidReason.CONFLICTING_DUPLICATE]
    refused = [r for r in result.refused if r.reason is not InvalidReason.CONFLICTING_DUPLICATE]
    return (
        (_INDEX["inserted"], map(_SOURCE, result.inserted)),
        (_INDEX["duplicates"], map(_SOURCE, result.duplicates)),
        (_INDEX["conflicts"], map(_REFUSED_SOURCE, conflicts)),
        (_INDEX["refused"], map(_REFUSED_SOURCE, refused)),
        (_INDEX["expired"], map(_SOURCE, result.expired)),
        (_INDEX["dead_lettered"], dead_lettered),
    )


def _dedupe_batch(events: Sequence[ValidEvent]) -> tuple[list[ValidEvent], WriteResult]:
    """Keeps the first occurrence of each event_id; later ones are duplicates or conflicts."""
    result = WriteResult()
    first: dict[Any, ValidEvent] = {}
    for item in events:
        earlier = first.setdefault(item.event.event_id, item)
        if earlier is item:
            continue
        if earlier.fingerprint == item.fingerprint:
            result.duplicates.append(item)
        else:
            result.refused.append(conflict(item))
    return list(first.values()), result


def _classify_stored(
    items: list[ValidEvent], stored: Mapping[Any, bytes | None], result: WriteResult
) -> None:
    """Sorts events that were not inserted: stored with the same content (or stored before
    fingerprints existed), a duplicate; with other content, a conflict; not stored at all, it
    was older than the retention horizon."""
    for item in items:
        event_id = item.event.event_id
        if event_id not in stored:
            result.expired.append(item)
        elif (fingerprint := stored[event_id]) is None or fingerprint == item.fingerprint:
            result.duplicates.append(item)
        else:
            result.refused.append(conflict(item))


def _expire_repeats(result: WriteResult) -> None:
    """A repeat, within the batch, of an expired event is expired too, not a duplicate."""
    if not result.expired or not result.duplicates:
        return
    expired = {item.event.event_id for item in result.expired}
    result.expired += [item for item in result.duplicates if item.event.event_id in expired]
    result.duplicates = [item for item in result.duplicates if item.event.event_id not in expired]


def _refused(item: ValidEvent, error: Exception) -> Refused:
    message = f"PostgreSQL refused the row: {first_line(error)}"
    return Refused(item, InvalidReason.DATABASE_REJECTED, message)


def conflict(item: ValidEvent) -> Refused:
    """The refusal of an event whose event_id is stored (or staged) with other content."""
    return Refused(
        item,
        InvalidReason.CONFLICTING_DUPLICATE,
        f"event_id {item.event.event_id} is already stored with different content; "
        "the first one stays",
    )


def _row(item: ValidEvent) -> tuple[Any, ...]:
    """The COPY row of an event, in COLUMNS' order. Runs once per event on the store thread,
    whose time the consuming loop waits out: no property calls, no copies of the event."""
    event = item.event
    values: tuple[Any, ...] = _EVENT_VALUES(event)
    if values[_ATTRIBUTES] is not None:
        # jsonb cannot hold every JSON number the contract accepts (1e-99999): dumps_jsonb
        # writes those as strings, so every valid event stores.
        attributes = json_codec.dumps_jsonb(values[_ATTRIBUTES])
        values = (*values[:_ATTRIBUTES], attributes, *values[_ATTRIBUTES + 1 :])
    unknown = event.__pydantic_extra__  # ExecutionEvent.unknown_fields, without its copy
    source = item.source
    return (
        *values,
        event.outcome or _DERIVED_OUTCOME[event.success],  # ExecutionEvent.resolved_outcome
        json_codec.dumps_jsonb(unknown) if unknown else None,
        item.fingerprint,
        source.topic,
        source.partition,
        source.offset,
    )


def _database_errors() -> AbstractContextManager[None]:
    """Maps psycopg errors to what the consuming loop does about them: retry the batch
    (DatabaseUnavailableError, LockWaitError) or stop with a one-line message (FatalError)."""
    return db.errors(
        privileges="the worker's role needs INSERT, UPDATE and SELECT on the roi tables and "
        "TEMPORARY on the database",
        session_tables=(STAGING_TABLE,),
    )
