"""Reading dead letters back and preparing their redrive: pure logic, no services."""

from __future__ import annotations

from typing import Any, ClassVar

from worker.kafka.dead_letters import DeadLetterPublisher
from worker.ops.dead_letters import Letter, preview
from worker.types import DeadLetter, DeadLetterHeader, Message


def letter(headers: list[tuple[str, bytes | None]]) -> Letter:
    message = Message("events", 2, 40, 1_700_000_000_000, b"key", b"{", headers)
    written = DeadLetter(message, "invalid_json", "invalid_json: bad").headers()
    return Letter.parse(Message("events.dlq", 0, 7, 1_700_000_000_500, b"key", b"{", [*written]))


def test_preview_escapes_what_a_terminal_would_obey() -> None:
    """Control and bidi characters and invalid UTF-8 are shown escaped, text as it is."""
    assert preview(b"\x1b[2J\xff caf\xc3\xa9 \xe2\x80\xae\n") == "\\x1b[2J\\xff café \\u202e\\n"
    assert preview(None) is None


def test_preview_cuts_at_the_limit_without_half_a_character() -> None:
    """A multibyte character cut by the limit is left out, not shown as stray bytes."""
    assert preview("aé".encode(), limit=2) == "a"
    assert preview(b"abc", limit=3) == "abc"


def test_a_letter_is_read_back_with_its_source_and_count() -> None:
    """The worker's headers give the reason, the source and the times already redriven."""
    parsed = letter([("roi.redrive.count", b"2"), ("roi.redrive.source", b"events.dlq/0/3")])
    assert parsed.reason == "invalid_json"
    assert parsed.source == ("events", 2, 40)
    assert parsed.source_timestamp == 1_700_000_000_000
    assert parsed.redrive_count == 2
    assert parsed.value_dropped_bytes is None


def test_a_garbled_or_repeated_count_never_lowers_it() -> None:
    """A count that is not a decimal is ignored; of several, the largest counts."""
    assert letter([("roi.redrive.count", b"-5")]).redrive_count == 0
    assert letter([("roi.redrive.count", b"3"), ("roi.redrive.count", b"x")]).redrive_count == 3
    assert letter([("roi.redrive.count", b"1"), ("roi.redrive.count", b"4")]).redrive_count == 4


def test_redrive_headers_replace_ours_and_keep_the_rest() -> None:
    """roi.error.*, roi.source.* and roi.redrive.* go; the producer's headers stay, in order."""
    parsed = letter([("traceparent", b"00-1"), ("roi.redrive.count", b"1"), ("empty", None)])
    assert parsed.redrive_headers() == [
        ("traceparent", b"00-1"),
        ("empty", b""),
        ("roi.redrive.count", b"2"),
        ("roi.redrive.source", b"events.dlq/0/7"),
    ]


def test_every_header_a_dead_letter_carries_is_read_back() -> None:
    """What a DeadLetter carries, roi-worker dlq reads: each DeadLetterHeader the worker
    sets (a dropped value included) comes back as the Letter field it stands for."""
    source = Message("events", 3, 41, 1_700_000_000_123, b"key", b"x" * 10, [("trace", b"t")])
    letter = DeadLetter(source, "schema_violation", "success: is required", "success:missing")
    sent: dict[str, Any] = {}

    class _Producer:
        config: ClassVar[dict[str, int]] = {"max_request_size": 1 << 20}

        def send(self, topic: str, **record: Any) -> None:
            sent.update(record, topic=topic)

    publisher = DeadLetterPublisher(_Producer, "events.dlq", timeout=1.0)
    publisher._send(_Producer(), letter, drop_value=True)
    written = {name for name, _ in sent["headers"] if name.startswith("roi.")}
    not_written = {DeadLetterHeader.REDRIVE_COUNT, DeadLetterHeader.REDRIVE_SOURCE}  # redrive's
    assert written == set(DeadLetterHeader) - not_written

    read = Letter.parse(Message("events.dlq", 0, 7, 0, b"key", b"", sent["headers"]))
    assert read.reason == "schema_violation"
    assert read.error == "success: is required"
    assert read.fields == "success:missing"
    assert read.source == ("events", 3, 41)
    assert read.source_timestamp == 1_700_000_000_123
    assert read.value_dropped_bytes == 10
    assert read.redrive_count == 0
