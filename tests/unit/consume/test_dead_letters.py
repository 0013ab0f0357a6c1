"""Dead-letter headers and the batch bookkeeping around them: pure logic."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from kafka.errors import KafkaTimeoutError

from tests.helpers import wait_until
from tests.strategies import NOW, example_document
from worker.consume.prepare import Batch, prepare
from worker.consume.write import ValidEvent
from worker.contract.validate import validate
from worker.errors import BrokerUnavailableError
from worker.kafka.dead_letters import DeadLetterPublisher
from worker.types import MAX_MESSAGE_BYTES, DeadLetter, Message, Source


def message(
    partition: int = 1, offset: int = 42, headers: list[tuple[str, bytes | None]] | None = None
) -> Message:
    return Message("events", partition, offset, 1_700_000_000_000, b"key", b"{", headers or [])


def test_headers_keep_the_originals_and_add_reason_and_source() -> None:
    letter = DeadLetter(message(headers=[("traceparent", b"00-1"), ("empty", None)]), "r", "why")
    assert letter.headers() == [
        ("traceparent", b"00-1"),
        ("empty", b""),
        ("roi.error.reason", b"r"),
        ("roi.error.message", b"why"),
        ("roi.source.topic", b"events"),
        ("roi.source.partition", b"1"),
        ("roi.source.offset", b"42"),
        ("roi.source.timestamp", b"1700000000000"),
    ]


def test_stale_roi_headers_are_replaced_not_repeated() -> None:
    stale: list[tuple[str, bytes | None]] = [
        ("roi.error.reason", b"old"),
        ("roi.source.offset", b"1"),
        ("roi.redrive", b"1"),
    ]
    names = [name for name, _ in DeadLetter(message(headers=stale), "new", "m").headers()]
    assert names.count("roi.error.reason") == 1
    assert names.count("roi.source.offset") == 1
    assert "roi.redrive" in names


def test_a_long_message_is_cut_to_its_limit() -> None:
    headers = dict(DeadLetter(message(), "r", "é" * MAX_MESSAGE_BYTES).headers())
    text = headers["roi.error.message"]
    assert len(text) <= MAX_MESSAGE_BYTES
    assert text.endswith(b"...")
    text.decode()  # still valid UTF-8


def test_a_batch_without_revoked_partitions_keeps_the_rest() -> None:
    messages = [message(partition=p, offset=o) for p in (0, 1) for o in (5, 6)]
    event = validate(example_document(), now=NOW)
    valid = [
        ValidEvent.of(event, Source("events", 0, 5)),
        ValidEvent.of(event, Source("events", 1, 5)),
    ]
    letters = [DeadLetter(messages[1], "r", "m"), DeadLetter(messages[3], "r", "m")]
    batch = Batch(messages, valid, letters, started=0.0)
    assert batch.next_offsets == {("events", 0): 7, ("events", 1): 7}

    kept = batch.without([("events", 1)])
    assert kept is not None
    assert kept.next_offsets == {("events", 0): 7}
    assert [v.source.partition for v in kept.valid] == [0]
    assert [d.message.partition for d in kept.letters] == [0]
    assert batch.without([("events", 0), ("events", 1)]) is None


class _PendingSend:
    """What a send returns while the broker has not answered (kafka-python's behaviour)."""

    is_done = False

    def get(self, timeout: float | None = None) -> None:
        raise KafkaTimeoutError(f"Timeout after waiting for {timeout} secs.")


class _TimingOutProducer:
    """A producer whose sends are never acknowledged, as after a broker was killed."""

    config: ClassVar[dict[str, int]] = {"max_request_size": 1 << 20, "delivery_timeout_ms": 0}

    def __init__(self) -> None:
        self.closed = False

    def send(self, topic: str, **kwargs: object) -> _PendingSend:
        del topic, kwargs
        return _PendingSend()

    def flush(self, timeout: float | None = None) -> None:
        del timeout

    def close(self, timeout: float | None = None) -> None:
        del timeout
        self.closed = True


def test_a_producer_that_timed_out_is_closed_and_made_again() -> None:
    """The next publish after a timeout (or after reset) uses a new producer, not the wedged
    one, and the old one is closed."""
    made: list[_TimingOutProducer] = []

    def make() -> Any:
        made.append(_TimingOutProducer())
        return made[-1]

    publisher = DeadLetterPublisher(make, "events.dlq", timeout=0)
    for attempt in (1, 2):
        with pytest.raises(BrokerUnavailableError, match="KafkaTimeoutError"):
            publisher.publish([DeadLetter(message(), "r", "e")])
        assert len(made) == attempt
        wait_until(lambda: made[-1].closed, timeout=5, what="the old producer to be closed")
    publisher.connect()
    assert len(made) == 3
    publisher.reset()  # from another thread: only a request
    assert not made[-1].closed
    publisher.connect()
    assert len(made) == 4
    wait_until(lambda: made[2].closed, timeout=5, what="the reset producer to be closed")


def test_a_run_of_undecodable_offsets_is_one_verdict_for_the_circuit_breaker() -> None:
    """60 unreadable offsets of one record batch (then one elsewhere) are 61 dead letters but
    two invalid verdicts: a corrupt batch must not open the breaker on its own."""
    run = [
        Message.of_undecodable("events", 0, offset, "CorruptRecordError") for offset in range(60)
    ]
    other = Message.of_undecodable("events", 1, 5, "CorruptRecordError")
    verdicts: list[bool] = []
    batch = prepare(
        [*run, other], now=NOW, closed=0.0, on_checked=lambda _, valid: verdicts.append(valid)
    )
    assert len(batch.letters) == 61
    assert {letter.reason for letter in batch.letters} == {"undecodable_record"}
    assert verdicts == [False, False]
    assert batch.next_offsets == {("events", 0): 60, ("events", 1): 6}
