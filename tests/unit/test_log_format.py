"""ROI_LOG_FORMAT: text lines or JSON objects, both redacted, on stderr."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest

from worker.process import configure_logging
from worker.redaction import register_secret
from worker.settings import load_settings


@pytest.fixture
def configure() -> Iterator[Callable[[str, str], None]]:
    """configure_logging on a root logger without pytest's handlers; they are put back."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def run(level: str, log_format: str) -> None:
        root.handlers = []  # in the test's own phase: pytest adds its handlers per phase
        configure_logging(level, log_format)

    yield run
    root.handlers, root.level = saved[0], saved[1]


def test_json_lines_have_stable_keys_and_are_redacted(
    configure: Callable[[str, str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    register_secret("J5on-secret")
    configure("INFO", "json")
    log = logging.getLogger("worker.example")
    log.info("stored %d events from postgresql://u:J5on-secret@h/db", 3)
    try:
        raise ValueError("refused J5on-secret")
    except ValueError:
        log.exception("batch failed")
    lines = capsys.readouterr().err.splitlines()
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO"
    assert first["logger"] == "worker.example"
    assert first["message"] == "stored 3 events from postgresql://u:***@h/db"
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR"
    assert second["exc_info"].endswith("ValueError: refused ***")
    assert "J5on-secret" not in "".join(lines)


def test_text_lines_stay_the_default(
    configure: Callable[[str, str], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROI_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("ROI_LOG_FORMAT", "JSON")
    assert load_settings().log_format == "json"
    monkeypatch.delenv("ROI_LOG_FORMAT")
    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    logging.getLogger("worker.example").warning("plain")
    assert capsys.readouterr().err.rstrip().endswith(" WARNING worker.example: plain")
