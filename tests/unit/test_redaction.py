"""worker.redaction: every shape a secret is written in, and every spelling of a known one."""

from __future__ import annotations

import io
import logging
import sys
from urllib.parse import quote

import pytest

from worker.redaction import (
    MASK,
    RedactingFormatter,
    RedactingStream,
    redact,
    register_secret,
)
from worker.settings import load_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("http://127.0.0.1:8000/docs", "http://127.0.0.1:8000/docs"),
        ("postgresql://u:p%40ss@h:1/db", "postgresql://u:***@h:1/db"),
        ("postgresql://:secret@h/db", "postgresql://:***@h/db"),
        ("at postgresql://u:pa@ss@h/db: refused", "at postgresql://u:***@h/db: refused"),
        ("postgresql://u:a/b?c#d@h/db", "postgresql://u:***@h/db"),
        ("postgresql://h/db?password=hunter2", "postgresql://h/db?password=***"),
        (
            "postgresql://h/db?sslmode=require&Password=x&a=b",
            "postgresql://h/db?sslmode=require&Password=***&a=b",
        ),
        ("postgresql://h/db?sslpassword=k3y&x=1", "postgresql://h/db?sslpassword=***&x=1"),
        ("host=h password=hunter2 user=u", "host=h password=*** user=u"),
        ("host=h password='hun ter2' user=u", "host=h password=*** user=u"),
        (
            "{'sasl_plain_password': 'hunter2', 'client_id': 'roi-worker'}",
            "{'sasl_plain_password': '***', 'client_id': 'roi-worker'}",
        ),
        ('{"ssl_password": "k3y", "a": 1}', '{"ssl_password": "***", "a": 1}'),
        ("ROI_API_WRITE_TOKENS=t1,t2 ROI_X=1", "ROI_API_WRITE_TOKENS=*** ROI_X=1"),
        ("Authorization: Bearer abc.DEF-123", "Authorization: Bearer ***"),
        # Not secrets: event fields that count a model's tokens, prose about passwords.
        ('{"actual_tokens": 120, "baseline_tokens": 300}', None),
        ('FATAL: password authentication failed for user "roi"', None),
        ("ROI_KAFKA_SASL_PASSWORD: required with SASL_SSL", None),
    ],
)
def test_shapes_that_carry_a_secret_are_masked(text: str, expected: str | None) -> None:
    """Whatever the value, a secret written in one of these shapes is hidden; nothing else."""
    assert redact(text) == (text if expected is None else expected)


def test_registered_secrets_are_masked_in_every_spelling() -> None:
    """A known secret is found wherever it is quoted: raw, percent-encoded, escaped."""
    secret = "Zq9/@:%?#'\"x y"
    register_secret(secret)
    for spelling in (secret, quote(secret, safe=""), quote(secret), repr(secret)[1:-1]):
        shown = redact(f"could not use {spelling} here")
        assert secret not in shown
        assert spelling not in shown
        assert MASK in shown


def test_short_values_are_not_masked_as_plain_text() -> None:
    """A three-letter password would mask ordinary words; its shapes still hide it."""
    register_secret("roi")
    assert redact("roi-worker") == "roi-worker"
    assert redact("postgresql://roi:roi@h/roi") == "postgresql://roi:***@h/roi"


def test_settings_register_their_secrets_even_when_invalid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A secret is registered as it is read: an invalid neighbour setting changes nothing."""
    monkeypatch.setenv("ROI_DATABASE_URL", "postgresql://u:Db-Pa55word@h/db")
    monkeypatch.setenv("ROI_KAFKA_SASL_PASSWORD", "Kafka-Pa55word")
    monkeypatch.setenv("ROI_API_WRITE_TOKENS", "write-token-0123456789,write-token-abcdefghij")
    monkeypatch.setenv("ROI_BATCH_MAX_MESSAGES", "not a number")
    with pytest.raises(Exception, match="ROI_BATCH_MAX_MESSAGES"):
        load_settings()
    shown = redact("Db-Pa55word Kafka-Pa55word write-token-abcdefghij")
    assert shown == f"{MASK} {MASK} {MASK}"


def test_the_formatter_masks_messages_and_tracebacks() -> None:
    """Log records are redacted after formatting: arguments and exception text included."""
    register_secret("Tr4ceback-secret")
    secret = ("Tr4ceback-secret",)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "url %s", secret, None)
    try:
        raise RuntimeError("failed with Tr4ceback-secret")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    text = RedactingFormatter("%(message)s").format(record)
    assert "Tr4ceback-secret" not in text
    assert "RuntimeError: failed with ***" in text


def test_the_stream_masks_a_secret_split_across_writes() -> None:
    """Whole lines are redacted, so a secret written in pieces is still seen whole."""
    register_secret("Spl1t-secret")
    target = io.StringIO()
    stream = RedactingStream(target)
    stream.write("one Spl1t-")
    stream.write("secret two\nthree")
    assert target.getvalue() == f"one {MASK} two\n"
    stream.flush()
    assert target.getvalue() == f"one {MASK} two\nthree"
    stream.write("progress Spl1t-secret\r")
    assert target.getvalue().endswith(f"progress {MASK}\r")


def test_an_unescaped_at_in_a_url_password_hides_each_piece(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libpq reads `u:Left-piece@Right-piece@h` as password `Left-piece` and host
    `Right-piece@h`, which its errors quote: both pieces are secrets."""
    monkeypatch.setenv("ROI_DATABASE_URL", "postgresql://u:Left-piece@Right-piece@h/db")
    load_settings()
    shown = redact("failed to resolve host 'Right-piece@h': Name or service not known")
    assert "Right-piece" not in shown
    assert "Left-piece" not in redact("password Left-piece")
