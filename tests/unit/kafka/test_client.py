"""The consumers' one configuration, and how undecodable records and skipped offsets travel
through a batch (pure logic; tests/integration/test_consumer_reads.py reads real topics).
tests/unit/kafka/test_door.py checks that every consumer is made by new_consumer."""

from __future__ import annotations

import contextlib
import gzip
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

import pytest
from kafka import TopicPartition
from kafka.errors import (
    CorruptRecordError,
    KafkaConnectionError,
    KafkaTimeoutError,
    UnsupportedCodecError,
)

from tests.integration.events import sample_events
from worker.consume.prepare import prepare
from worker.errors import FatalError
from worker.kafka.client import RecordReader, may_be_undecodable, new_consumer
from worker.ops.dead_letters import Inspection, Letter
from worker.settings import KafkaSettings
from worker.types import DeadLetter, Message, Skipped

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_every_consumer_reads_committed_events_only() -> None:
    """The consumer configuration asks for read_committed, and new_consumer refuses another."""
    settings = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:9")
    assert settings.consumer_config()["isolation_level"] == "read_committed"
    assert settings.consumer_config()["bootstrap_servers"] == ["127.0.0.1:9"]
    with pytest.raises(ValueError, match="committed"):
        new_consumer(settings, isolation_level="read_uncommitted")


@pytest.mark.parametrize(
    ("error", "undecodable"),
    [
        (CorruptRecordError("Found invalid record structure"), True),
        (UnsupportedCodecError("Libraries for zstd compression codec not found"), True),
        (zlib.error("invalid stored block lengths"), True),
        (gzip.BadGzipFile("Not a gzipped file"), True),
        (RuntimeError("LZ4F_decompress failed"), True),
        (KafkaTimeoutError("Timeout waiting for future"), False),
        (KafkaConnectionError("connection reset"), False),
    ],
)
def test_which_poll_errors_may_be_a_record_the_client_cannot_decode(
    error: Exception, undecodable: bool
) -> None:
    """Kafka's record errors and any codec's own errors are probed; the client's other errors
    (an unreachable broker) are not."""
    assert may_be_undecodable(error) is undecodable


def message(partition: int, offset: int, value: bytes) -> Message:
    return Message("events", partition, offset, 1_700_000_000_000, b"k", value, [])


def test_undecodable_records_are_dead_lettered_and_skipped_offsets_stored() -> None:
    """prepare() dead-letters an undecodable record like an invalid event, and a Skipped entry
    moves its partition's next offset without being a message."""
    valid = sample_events(1)[0].value
    verdicts: list[bool] = []
    batch = prepare(
        [
            message(0, 4, valid),
            Message.of_undecodable("events", 0, 5, "CorruptRecordError: failed crc check"),
            Skipped.up_to("events", 0, 9),  # a transaction's marker at 8, say
            Skipped.up_to("events", 1, 12),  # an aborted transaction and its marker only
        ],
        now=NOW,
        closed=0.0,
        on_checked=lambda _, valid: verdicts.append(valid),
    )
    assert verdicts == [True, False]
    assert [m.offset for m in batch.messages] == [4, 5]
    assert [v.source.offset for v in batch.valid] == [4]
    [letter] = batch.letters
    assert (letter.reason, letter.error) == (
        "undecodable_record",
        "CorruptRecordError: failed crc check",
    )
    assert batch.next_offsets == {("events", 0): 9, ("events", 1): 12}

    only_skipped = batch.without([("events", 0)])
    assert only_skipped is not None
    assert (only_skipped.messages, only_skipped.next_offsets) == ([], {("events", 1): 12})
    assert only_skipped.without([("events", 1)]) is None


def test_a_batch_of_records_only_keeps_its_messages() -> None:
    """Without Skipped entries the batch holds the very list it was given (no copy)."""
    messages = [message(0, 0, b"{}"), message(1, 3, b"[]")]
    batch = prepare(messages, now=NOW, closed=0.0)
    assert batch.messages is messages
    assert batch.next_offsets == {("events", 0): 1, ("events", 1): 4}


def test_the_dead_letter_of_an_undecodable_record_says_where_it_is() -> None:
    """Its headers name the source topic, partition and offset and the client's error; the
    unknown timestamp is left out rather than written as -1."""
    undecodable = Message.of_undecodable("events", 2, 41, "CorruptRecordError: bad header key")
    headers = dict(
        DeadLetter(undecodable, "undecodable_record", undecodable.undecodable or "").headers()
    )
    assert headers == {
        "roi.error.reason": b"undecodable_record",
        "roi.error.message": b"CorruptRecordError: bad header key",
        "roi.source.topic": b"events",
        "roi.source.partition": b"2",
        "roi.source.offset": b"41",
    }
    assert (undecodable.key, undecodable.value, undecodable.headers) == (None, None, [])


def test_the_dlq_tools_never_redrive_what_could_not_be_decoded() -> None:
    """An undecodable_record letter has no event to redrive, and a letter the tools cannot
    decode themselves is counted apart, with the client's error."""
    undecodable = Message.of_undecodable("events", 2, 41, "CorruptRecordError: bad header key")
    letter = DeadLetter(undecodable, "undecodable_record", "CorruptRecordError: bad header key")
    written = Message("events.dlq", 0, 7, 1, None, b"", [*letter.headers()])
    assert Letter.parse(written).undecodable
    assert not Letter.parse(
        written._replace(headers=[("roi.error.reason", b"invalid_json")])
    ).undecodable

    unreadable = Letter.parse(Message.of_undecodable("events.dlq", 0, 8, "UnicodeDecodeError"))
    assert (unreadable.undecodable, unreadable.error) == (True, "UnicodeDecodeError")
    inspection = Inspection("events.dlq", samples_per_reason=1)
    inspection.add(Letter.parse(written))
    inspection.add(unreadable)
    assert inspection.by_reason == {"undecodable_record": 1, "(undecodable)": 1}


class _FailingConsumer:
    """A consumer whose every poll fails on a record, as kafka-python does for a bad one."""

    config: ClassVar[dict[str, Any]] = {"client_id": "roi-worker"}

    def __init__(self) -> None:
        self.partitions = {TopicPartition("events", 0): 7}

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        raise zlib.error("invalid block type")

    def assignment(self) -> set[TopicPartition]:
        return set(self.partitions)

    def paused(self) -> set[TopicPartition]:
        return set()

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int:
        return self.partitions[tp]


class _ProbeReadingEverything:
    def failures(self, tp: TopicPartition, start: int, limit: int) -> list[tuple[int, str]]:
        return []


def test_a_failure_no_partition_reproduces_twice_in_a_row_stops_the_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once, an unexplained read failure is polled again (nothing dead-lettered); the same
    again at the next poll is a FatalError naming the partitions and their positions, instead
    of failing for ever."""

    @contextlib.contextmanager
    def probe(self: RecordReader) -> Iterator[_ProbeReadingEverything]:
        yield _ProbeReadingEverything()

    monkeypatch.setattr(RecordReader, "_probe", probe)
    reader = RecordReader(cast(Any, _FailingConsumer()))
    assert reader.poll(timeout_ms=100, max_records=10) == []
    with pytest.raises(FatalError, match=r"invalid block type.*events/0@7"):
        reader.poll(timeout_ms=100, max_records=10)
