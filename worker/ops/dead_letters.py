"""The dead-letter topic, for operators: inspect it, and redrive its letters after a fix.

Both read the topic from the first offset still stored to the end offsets taken when they
start (worker.kafka.topic_range), without a consumer group, so they always end and never disturb
the workers; letters that arrive meanwhile wait for the next run.

`redrive` re-publishes dead letters to the main topic, for each batch read, in this order:
1. classify every letter: outside `--reason` (filtered out); in redriven_dead_letters
   (already redriven, whichever filter that run used); a copy of a source redriven earlier in
   this run (a repeat: dead letters are at least once); value dropped as too large (not
   redrivable); `roi.redrive.count` at the limit (poison); otherwise to redrive;
2. publish those with their original key, value and headers, minus roi.error.*, roi.source.*
   and roi.redrive.*, plus `roi.redrive.count` (one more than the letter's) and
   `roi.redrive.source` (`topic/partition/offset` of the letter); wait for the broker's
   acknowledgement of every one;
3. only then record the acknowledged letters (and their repeats) in redriven_dead_letters, in
   one transaction.
A crash between 2 and 3 re-publishes that batch on the next run: harmless, because the worker
stores each event_id once, and a copy that fails again comes back with the same count, so the
limit still holds. The worker's dead letters keep every original header but roi.error.* and
roi.source.*, so the count travels with an event from round to round: an event that keeps
failing stops at the limit instead of looping.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal

import psycopg

from ..contract.validate import parse_event
from ..db.connect import connect
from ..errors import BrokerUnavailableError, FatalError, InvalidEventError, InvalidReason
from ..kafka.producers import Delivery, Producer, open_producer
from ..kafka.topic_range import PartitionRange, RangeReader, bounds, open_consumer, partitions_of
from ..settings import Settings
from ..types import HEADER_PREFIXES, REDRIVE_PREFIX, DeadLetterHeader, Message, Source

COUNT_HEADER: Final = DeadLetterHeader.REDRIVE_COUNT
SOURCE_HEADER: Final = DeadLetterHeader.REDRIVE_SOURCE
DEFAULT_MAX_REDRIVES: Final = 3
DEFAULT_SAMPLES: Final = 3
PREVIEW_BYTES: Final = 200  # of a sample's key and value
BATCH_RECORDS: Final = 500  # letters published, then recorded, together
ACK_TIMEOUT_SECONDS: Final = 60.0  # for the broker to acknowledge one batch
LISTED_LETTERS: Final = 20  # poison and unredrivable letters named in a text report
LOCK_KEY: Final = 0x524F495F444C5152  # "ROI_DLQR": one redrive at a time per database
UNDECODABLE: Final = InvalidReason.UNDECODABLE_RECORD.value

ALREADY_REDRIVEN: Final = """
    SELECT partition, "offset" FROM redriven_dead_letters
    WHERE topic = %s
      AND (partition, "offset") IN (SELECT p, o FROM unnest(%s::integer[], %s::bigint[]) AS t(p, o))
"""
RECORD_REDRIVEN: Final = """
    INSERT INTO redriven_dead_letters (topic, partition, "offset", redrive_count)
    SELECT %s, p, o, c FROM unnest(%s::integer[], %s::bigint[], %s::integer[]) AS t(p, o, c)
    ON CONFLICT (topic, partition, "offset") DO NOTHING
"""

RECORDED_ENDS: Final = """
    SELECT partition, max("offset") FROM redriven_dead_letters WHERE topic = %s GROUP BY partition
"""

Format = Literal["text", "json"]


# ---------------------------------------------------------------------------- letters


@dataclass(frozen=True, slots=True)
class Letter:
    """A dead letter read back from the dead-letter topic, with its headers parsed."""

    message: Message
    reason: str  # roi.error.reason; "" when missing (not written by the worker)
    error: str
    fields: str
    source: Source | None  # where it was dead-lettered from; None without roi.source.* headers
    source_timestamp: int | None  # milliseconds since the epoch
    redrive_count: int  # 0 for an event never redriven
    value_dropped_bytes: int | None

    @classmethod
    def parse(cls, message: Message) -> Letter:
        headers: dict[str, bytes] = {}
        counts: list[int] = []
        for name, value in message.headers:
            headers[name] = value or b""
            if name == COUNT_HEADER and (count := _decimal(value)) is not None:
                counts.append(count)
        topic = _text(headers.get(DeadLetterHeader.SOURCE_TOPIC))
        partition = _decimal(headers.get(DeadLetterHeader.SOURCE_PARTITION))
        offset = _decimal(headers.get(DeadLetterHeader.SOURCE_OFFSET))
        return cls(
            message=message,
            reason=_text(headers.get(DeadLetterHeader.REASON)),
            error=message.undecodable or _text(headers.get(DeadLetterHeader.MESSAGE)),
            fields=_text(headers.get(DeadLetterHeader.FIELDS)),
            source=Source(topic, partition, offset)
            if topic and partition is not None and offset is not None
            else None,
            source_timestamp=_decimal(headers.get(DeadLetterHeader.SOURCE_TIMESTAMP)),
            redrive_count=max(counts, default=0),  # several: the largest, never a reset
            value_dropped_bytes=_decimal(headers.get(DeadLetterHeader.VALUE_DROPPED_BYTES)),
        )

    @property
    def undecodable(self) -> bool:
        """A letter with no event to redrive: the worker could not decode the record it
        dead-lettered, or this tool cannot decode the letter itself."""
        return self.message.undecodable is not None or self.reason == UNDECODABLE

    @property
    def where(self) -> str:
        """`topic/partition@offset` of the letter itself."""
        m = self.message
        return f"{m.topic}/{m.partition}@{m.offset}"

    @property
    def origin(self) -> str:
        """`topic/partition@offset` of the message dead-lettered, or `unknown source`."""
        if self.source is None:
            return "unknown source"
        topic, partition, offset = self.source
        return f"{topic}/{partition}@{offset}"

    def redrive_headers(self) -> list[tuple[str, bytes]]:
        """The original headers without ours, then the new count and where it came from."""
        m = self.message
        return [
            *(
                (name, value or b"")  # the client refuses null header values
                for name, value in m.headers
                if not name.startswith((*HEADER_PREFIXES, REDRIVE_PREFIX))
            ),
            (COUNT_HEADER, str(self.redrive_count + 1).encode()),
            (SOURCE_HEADER, f"{m.topic}/{m.partition}/{m.offset}".encode()),
        ]


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value else ""


def _decimal(value: bytes | None) -> int | None:
    """A header holding a non-negative ASCII decimal, else None."""
    if not value or len(value) > 19 or not value.isdigit():
        return None
    return int(value)


def preview(data: bytes | None, limit: int = PREVIEW_BYTES) -> str | None:
    """The first `limit` bytes as text safe for a terminal: invalid UTF-8 as \\xNN, control
    and format characters (escape sequences, bidi overrides) escaped; a character cut at the
    limit is left out. None stays None."""
    if data is None:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
    text = decoder.decode(data[:limit], final=len(data) <= limit)
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    if unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
        return char
    code = ord(char)
    if char in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def _when(millis: int | None) -> str | None:
    if millis is None or millis < 0:
        return None
    moment = datetime.fromtimestamp(millis / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _read(settings: Settings, topic: str, client_id: str) -> Iterable[list[Letter]]:
    """The topic's letters in batches, from the first stored offsets to today's ends."""
    with open_consumer(settings, client_id) as consumer:
        ranges = [
            PartitionRange(p, first, end) for p, (first, end) in bounds(consumer, topic).items()
        ]
        for batch in RangeReader(consumer, topic, ranges).batches(BATCH_RECORDS):
            yield [Letter.parse(message) for message in batch]


# ---------------------------------------------------------------------------- inspect


@dataclass(slots=True)
class Inspection:
    """What the dead-letter topic holds: counts, time span and samples per reason."""

    topic: str
    samples_per_reason: int
    letters: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_source_topic: Counter[str] = field(default_factory=Counter)
    by_redrive_count: Counter[int] = field(default_factory=Counter)
    sources: set[Source] = field(default_factory=set)
    unsourced: int = 0  # letters without roi.source.* headers: each counts as distinct
    oldest: int | None = None  # the letters' own timestamps, milliseconds since the epoch
    newest: int | None = None
    samples: dict[str, list[Letter]] = field(default_factory=dict)

    @property
    def distinct_sources(self) -> int:
        return len(self.sources) + self.unsourced

    def add(self, letter: Letter) -> None:
        self.letters += 1
        reason = letter.reason or ("(undecodable)" if letter.undecodable else "(none)")
        self.by_reason[reason] += 1
        self.by_source_topic[letter.source[0] if letter.source else "(unknown)"] += 1
        self.by_redrive_count[letter.redrive_count] += 1
        if letter.source is None:
            self.unsourced += 1
        else:
            self.sources.add(letter.source)
        stamp = letter.message.timestamp
        if stamp >= 0:
            self.oldest = stamp if self.oldest is None else min(self.oldest, stamp)
            self.newest = stamp if self.newest is None else max(self.newest, stamp)
        kept = self.samples.setdefault(reason, [])
        if len(kept) < self.samples_per_reason:
            kept.append(letter)

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "letters": self.letters,
            "distinct_sources": self.distinct_sources,
            "repeated_copies": self.letters - self.distinct_sources,
            "oldest": _when(self.oldest),
            "newest": _when(self.newest),
            "by_reason": dict(self.by_reason.most_common()),
            "by_source_topic": dict(self.by_source_topic.most_common()),
            "by_redrive_count": {str(k): v for k, v in sorted(self.by_redrive_count.items())},
            "samples": {
                reason: [_sample_json(letter) for letter in letters]
                for reason, letters in self.samples.items()
            },
        }


def inspect(settings: Settings, topic: str, samples: int = DEFAULT_SAMPLES) -> Inspection:
    """Reads the whole dead-letter topic once. Raises ConfigurationError when it does not
    exist, BrokerUnavailableError when Kafka cannot be read."""
    inspection = Inspection(topic, samples)
    for batch in _read(settings, topic, "roi-worker-dlq-inspect"):
        for letter in batch:
            inspection.add(letter)
    return inspection


def _sample_json(letter: Letter) -> dict[str, Any]:
    m = letter.message
    source = letter.source
    return {
        "dead_letter": {"partition": m.partition, "offset": m.offset, "at": _when(m.timestamp)},
        "source": None
        if source is None
        else {
            "topic": source[0],
            "partition": source[1],
            "offset": source[2],
            "at": _when(letter.source_timestamp),
        },
        "message": letter.error,
        "fields": letter.fields,
        "redrive_count": letter.redrive_count,
        "key": preview(m.key),
        "value": preview(m.value),
        "value_bytes": None if m.value is None else len(m.value),
        "value_dropped_bytes": letter.value_dropped_bytes,
    }


def render_inspection(inspection: Inspection, fmt: Format) -> str:
    if fmt == "json":
        return json.dumps(inspection.to_json(), indent=2, ensure_ascii=False) + "\n"
    i = inspection
    if not i.letters:
        return f"dead-letter topic {i.topic}: no dead letters\n"
    repeats = i.letters - i.distinct_sources
    lines = [
        f"dead-letter topic {i.topic}: {i.letters:,} letters from {i.distinct_sources:,} "
        f"distinct sources ({repeats:,} repeated {'copy' if repeats == 1 else 'copies'})",
        f"dead-lettered from {_when(i.oldest) or '?'} to {_when(i.newest) or '?'}",
        "",
        *_table("reason", i.by_reason.most_common()),
        "",
        *_table("source topic", i.by_source_topic.most_common()),
    ]
    if set(i.by_redrive_count) != {0}:
        lines += ["", *_table("times redriven", sorted(i.by_redrive_count.items()))]
    for reason, letters in i.samples.items():
        total = i.by_reason[reason]
        lines += ["", f"{reason}: {len(letters)} of {total:,} shown"]
        for letter in letters:
            lines += _sample_text(letter)
    return "\n".join(lines) + "\n"


def _table(title: str, rows: Sequence[tuple[object, int]]) -> list[str]:
    width = max(len(title), *(len(str(name)) for name, _ in rows))
    return [
        f"{title:<{width}}  {'letters':>9}",
        "-" * (width + 11),
        *(f"{name!s:<{width}}  {count:>9,}" for name, count in rows),
    ]


def _sample_text(letter: Letter) -> list[str]:
    m = letter.message
    value = m.value
    size = (
        ""
        if value is None
        else f" ({len(value):,} bytes"
        + (f", first {PREVIEW_BYTES} shown)" if len(value) > PREVIEW_BYTES else ")")
    )
    lines = [
        f"  {letter.origin}, dead-lettered {_when(m.timestamp) or '?'} as {letter.where}",
        f"    error:  {preview(letter.error.encode(), 4096)}",
    ]
    if letter.fields:
        lines.append(f"    fields: {preview(letter.fields.encode())}")
    if letter.redrive_count:
        lines.append(f"    redriven {_times(letter.redrive_count)} before")
    lines.append(f"    key:    {_shown(m.key)}")
    if letter.value_dropped_bytes is not None:
        lines.append(f"    value:  (dropped: {letter.value_dropped_bytes:,} bytes, too large)")
    else:
        lines.append(f"    value:  {_shown(value)}{size}")
    return lines


def _shown(data: bytes | None) -> str:
    if data is None:
        return "(null)"
    return preview(data) or "(empty)"


# ---------------------------------------------------------------------------- redrive

# Letters refused for their bytes: the same bytes are checked again before they are published,
# so a redrive never floods the workers (and their circuit breaker) with what they will refuse.
CONTRACT_REASONS: Final = frozenset(
    reason.value
    for reason in (
        InvalidReason.NOT_UTF8,
        InvalidReason.INVALID_JSON,
        InvalidReason.NOT_AN_OBJECT,
        InvalidReason.UNSUPPORTED_SCHEMA_VERSION,
        InvalidReason.SCHEMA_VIOLATION,
    )
)


def _still_invalid(value: bytes | None) -> bool:
    try:
        parse_event(value)
    except InvalidEventError:
        return True
    return False


class Outcome(StrEnum):
    REDRIVEN = "redriven"  # published (or, in a dry run, would be)
    ALREADY_REDRIVEN = "already_redriven"  # in redriven_dead_letters: by an earlier run
    REPEAT = "repeat"  # a copy of a source redriven earlier in this run
    VALUE_DROPPED = "value_dropped"  # the letter has no value to publish (too large, undecodable)
    STILL_INVALID = "still_invalid"  # its bytes still fail decode or validate: not published
    POISON = "poison"  # redriven --max-redrives times already
    FILTERED_OUT = "filtered_out"  # another reason than --reason


@dataclass(frozen=True, slots=True)
class RedriveRequest:
    dlq_topic: str
    to_topic: str
    reason: str | None = None  # an InvalidReason value; None: every reason
    max_redrives: int = DEFAULT_MAX_REDRIVES
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class LetterRef:
    """A letter named in the report (its value is not kept)."""

    where: str
    origin: str
    reason: str
    redrive_count: int
    value_dropped_bytes: int | None

    @classmethod
    def of(cls, letter: Letter) -> LetterRef:
        return cls(
            letter.where,
            letter.origin,
            letter.reason,
            letter.redrive_count,
            letter.value_dropped_bytes,
        )


@dataclass(slots=True)
class RedriveResult:
    """What a redrive did. `failure` is the error that ended it early (re-raise it after
    reporting); `complete` says whether every partition was read to its end offset."""

    request: RedriveRequest
    counts: Counter[Outcome] = field(default_factory=Counter)
    read: int = 0
    failed: int = 0  # published but not acknowledged, or their repeats: not recorded
    poison: list[LetterRef] = field(default_factory=list)
    value_dropped: list[LetterRef] = field(default_factory=list)
    complete: bool = False
    failure: BaseException | None = None

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "topic": r.dlq_topic,
            "to_topic": r.to_topic,
            "reason": r.reason,
            "max_redrives": r.max_redrives,
            "dry_run": r.dry_run,
            "complete": self.complete,
            "read": self.read,
            **{outcome.value: self.counts[outcome] for outcome in Outcome},
            "failed": self.failed,
            "poison_letters": [_ref_json(ref) for ref in self.poison],
            "value_dropped_letters": [_ref_json(ref) for ref in self.value_dropped],
        }


def _ref_json(ref: LetterRef) -> dict[str, Any]:
    return {
        "dead_letter": ref.where,
        "source": ref.origin,
        "reason": ref.reason,
        "redrive_count": ref.redrive_count,
        "value_dropped_bytes": ref.value_dropped_bytes,
    }


def redrive(settings: Settings, request: RedriveRequest) -> RedriveResult:
    """Redrives the dead-letter topic once (see the module docstring for the order of steps).

    Raises before reading anything: ConfigurationError for a missing topic, FatalError when
    another redrive holds the lock or redriven_dead_letters records offsets beyond the topic's
    end, DatabaseUnavailableError or BrokerUnavailableError. An
    error while reading or publishing ends the run with what was done so far, the error in
    `failure`; KeyboardInterrupt included. A dry run publishes and records nothing.
    """
    url = settings.database_url.get_secret_value()
    result = RedriveResult(request)
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(connect(url, autocommit=True))
        if not request.dry_run:
            _lock(conn)
        conn.execute("SELECT 1 FROM redriven_dead_letters LIMIT 0")  # migrated?
        consumer = open_consumer(settings, "roi-worker-dlq-redrive")
        stack.callback(consumer.close)
        partitions_of(consumer, request.to_topic)  # exists: a send would block a minute
        ranges = [
            PartitionRange(p, first, end)
            for p, (first, end) in bounds(consumer, request.dlq_topic).items()
        ]
        _check_recorded(conn, request.dlq_topic, ranges)
        producer = None
        if not request.dry_run:
            producer = _producer(settings)
            stack.callback(producer.close, timeout=5)
        reader = RangeReader(consumer, request.dlq_topic, ranges)
        run = _Redrive(conn, producer, request, result)
        try:
            for batch in reader.batches(BATCH_RECORDS):
                run.batch([Letter.parse(message) for message in batch])
        except (Exception, KeyboardInterrupt) as exc:  # reported by the caller, then re-raised
            result.failure = exc
        result.complete = result.failure is None and len(reader.done) == len(ranges)
    return result


def _check_recorded(
    conn: psycopg.Connection[Any], topic: str, ranges: Sequence[PartitionRange]
) -> None:
    """Refuses recorded offsets at or beyond a partition's end: the topic was recreated and
    its offsets start again, so new letters would pass for redriven ones."""
    ends = {r.partition: r.end for r in ranges}
    rows = conn.execute(RECORDED_ENDS, (topic,)).fetchall()
    beyond = [f"{p}: {last} >= {ends.get(p, 0)}" for p, last in rows if last >= ends.get(p, 0)]
    if beyond:
        raise FatalError(
            f"redriven_dead_letters records offsets of {topic} beyond its end (partition "
            f"{'; '.join(beyond)}): was the topic recreated? If so, forget them: DELETE FROM "
            f"redriven_dead_letters WHERE topic = '{topic}'"
        )


def _lock(conn: psycopg.Connection[Any]) -> None:
    """Held for the session: two redrives at once could both publish a letter."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
    if not row or not row[0]:
        raise FatalError(
            "another `roi-worker dlq redrive` is running on this database; let it finish"
        )


def _producer(settings: Settings) -> Producer:
    return open_producer(
        settings, "roi-worker-dlq-redrive", acks="all", enable_idempotence=True, linger_ms=5
    )


class _Redrive:
    """One run's state: the sources redriven so far, and the batch steps."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        producer: Producer | None,
        request: RedriveRequest,
        result: RedriveResult,
    ) -> None:
        self._conn = conn
        self._producer = producer
        self._request = request
        self._result = result
        self._planned: set[Source] = set()  # sources sent in this run
        self._acknowledged: set[Source] = set()

    def batch(self, letters: list[Letter]) -> None:
        result = self._result
        result.read += len(letters)
        done = self._already_redriven(letters)
        send: list[Letter] = []
        repeats: list[Letter] = []
        for letter in letters:
            outcome = self._classify(letter, done)
            if outcome is Outcome.REDRIVEN:
                send.append(letter)
                self._planned.add(_identity(letter))
            elif outcome is Outcome.REPEAT:
                repeats.append(letter)
            else:
                result.counts[outcome] += 1
                if outcome is Outcome.POISON:
                    result.poison.append(LetterRef.of(letter))
                elif outcome is Outcome.VALUE_DROPPED:
                    result.value_dropped.append(LetterRef.of(letter))
        if self._producer is None:  # dry run
            result.counts[Outcome.REDRIVEN] += len(send)
            result.counts[Outcome.REPEAT] += len(repeats)
            return
        acknowledged, error = self._publish(self._producer, send)  # 2. publish and wait
        self._acknowledged.update(_identity(letter) for letter in acknowledged)
        covered = [r for r in repeats if _identity(r) in self._acknowledged]
        result.counts[Outcome.REDRIVEN] += len(acknowledged)
        result.counts[Outcome.REPEAT] += len(covered)
        result.failed += len(send) - len(acknowledged) + len(repeats) - len(covered)
        self._record([*acknowledged, *covered])  # 3. only then record
        if error is not None:
            raise error

    def _classify(self, letter: Letter, done: set[tuple[int, int]]) -> Outcome:
        """The first outcome whose rule applies (in this order), else REDRIVEN."""
        m = letter.message
        wanted = self._request.reason
        rules: tuple[tuple[Outcome, Callable[[], bool]], ...] = (
            (Outcome.FILTERED_OUT, lambda: wanted is not None and letter.reason != wanted),
            (Outcome.ALREADY_REDRIVEN, lambda: (m.partition, m.offset) in done),
            (Outcome.REPEAT, lambda: _identity(letter) in self._planned),
            (
                Outcome.VALUE_DROPPED,
                lambda: letter.value_dropped_bytes is not None or letter.undecodable,
            ),
            (
                Outcome.STILL_INVALID,
                lambda: letter.reason in CONTRACT_REASONS and _still_invalid(m.value),
            ),
            (Outcome.POISON, lambda: letter.redrive_count >= self._request.max_redrives),
        )
        return next((outcome for outcome, applies in rules if applies()), Outcome.REDRIVEN)

    def _already_redriven(self, letters: list[Letter]) -> set[tuple[int, int]]:
        rows = self._conn.execute(
            ALREADY_REDRIVEN,
            (
                self._request.dlq_topic,
                [letter.message.partition for letter in letters],
                [letter.message.offset for letter in letters],
            ),
        ).fetchall()
        return {(partition, offset) for partition, offset in rows}

    def _publish(
        self, producer: Producer, letters: list[Letter]
    ) -> tuple[list[Letter], Exception | None]:
        """Sends and waits: the letters the broker acknowledged, and the first error if any
        was not (BrokerUnavailableError to retry, FatalError when it never will)."""
        topic = self._request.to_topic
        sent: list[tuple[Letter, Delivery]] = []
        errors: list[BrokerUnavailableError | FatalError] = []
        for letter in letters:
            m = letter.message
            value = b"" if m.key is None and m.value is None else m.value
            try:
                delivery = producer.send(topic, value, key=m.key, headers=letter.redrive_headers())
            except (BrokerUnavailableError, FatalError) as exc:
                errors.append(exc)
                continue
            sent.append((letter, delivery))
        try:
            producer.flush(timeout=ACK_TIMEOUT_SECONDS)
        except (BrokerUnavailableError, FatalError) as exc:
            errors.append(exc)
        acknowledged = [letter for letter, delivery in sent if delivery.acknowledged]
        errors += [error for _, delivery in sent if (error := delivery.error) is not None]
        if len(acknowledged) == len(letters):
            return acknowledged, None
        first = errors[0] if errors else None
        where = f"{len(letters) - len(acknowledged)} of {len(letters)} letters not taken by {topic}"
        if isinstance(first, FatalError):
            return acknowledged, FatalError(f"{where}: {first}")
        return acknowledged, BrokerUnavailableError(f"{where}: {first or 'no acknowledgement'}")

    def _record(self, letters: list[Letter]) -> None:
        if not letters:
            return
        with self._conn.transaction():
            self._conn.execute(
                RECORD_REDRIVEN,
                (
                    self._request.dlq_topic,
                    [letter.message.partition for letter in letters],
                    [letter.message.offset for letter in letters],
                    [letter.redrive_count + 1 for letter in letters],
                ),
            )


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count:,} times"


def _identity(letter: Letter) -> Source:
    """The source it was dead-lettered from; the letter itself when that is unknown."""
    m = letter.message
    return letter.source or Source(m.topic, m.partition, m.offset)


def render_redrive(result: RedriveResult, fmt: Format) -> str:
    if fmt == "json":
        return json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
    r = result.request
    counts = result.counts
    reason = f"reason {r.reason}" if r.reason else "every reason"
    verb = "would redrive" if r.dry_run else "redriven"
    rows: list[tuple[str, int, str]] = [
        ("read", result.read, ""),
        (verb, counts[Outcome.REDRIVEN], f"to {r.to_topic}"),
        ("already redriven", counts[Outcome.ALREADY_REDRIVEN], "by an earlier run"),
        ("repeated copies", counts[Outcome.REPEAT], "of a source redriven in this run"),
        ("still invalid", counts[Outcome.STILL_INVALID], "fail validation as they are"),
        ("poison", counts[Outcome.POISON], f"redriven {_times(r.max_redrives)} already"),
        ("not redrivable", counts[Outcome.VALUE_DROPPED], "value too large or undecodable"),
        ("filtered out", counts[Outcome.FILTERED_OUT], "other reasons"),
    ]
    if result.failed:
        rows.append(("failed", result.failed, "not acknowledged, not recorded"))
    lines = [
        f"{'plan: ' if r.dry_run else ''}redrive of {r.dlq_topic} to {r.to_topic} "
        f"({reason}, at most {r.max_redrives} redrives per event)",
        *(f"{name:<17} {count:>9,}  {note}".rstrip() for name, count, note in rows),
    ]
    for title, refs in (("poison", result.poison), ("not redrivable", result.value_dropped)):
        for ref in refs[:LISTED_LETTERS]:
            if ref.value_dropped_bytes is not None:
                why = f"value of {ref.value_dropped_bytes:,} bytes dropped"
            elif title == "poison":
                why = f"redriven {_times(ref.redrive_count)}"
            else:
                why = "undecodable: no value to publish"
            lines.append(
                f"{title}: {ref.where} from {ref.origin}, {ref.reason or '(no reason)'}, {why}"
            )
        if len(refs) > LISTED_LETTERS:
            lines.append(f"{title}: ... and {len(refs) - LISTED_LETTERS:,} more (--format json)")
    if r.dry_run:
        lines.append("nothing was published or recorded: add --execute to apply")
    if not result.complete:
        lines.append("incomplete: the dead-letter topic was not read to its end")
    return "\n".join(lines) + "\n"
