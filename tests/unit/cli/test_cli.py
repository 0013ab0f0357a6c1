"""The command line as users run it: one line and a non-zero exit for every kind of mistake."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.strategies import example_document
from worker import schemas
from worker.cli import dlq as cli_dlq
from worker.contract import json_codec
from worker.ops import dead_letters
from worker.process import (
    GC_YOUNG_THRESHOLD,
    SWITCH_INTERVAL_SECONDS,
    RateLimit,
    tune_for_throughput,
)

ROOT = Path(__file__).parents[3]
# What only the commands that use them may load: building the parser loads none of them.
CLIENTS_AND_FRAMEWORKS = frozenset(
    {"kafka", "fastapi", "starlette", "uvicorn", "prometheus_client"}
)
DRIVER_AND_MODELS = frozenset({"psycopg", "pydantic", "pydantic_settings", "pythonjsonlogger"})


def run(*args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "worker", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [("--bogus",), ("migrate", "--bogus"), ("no-such-command",), ()],
)
def test_bad_arguments_get_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    """Unknown flags and commands print one line pointing at --help, exit code 2."""
    result = run(*args)
    assert result.returncode == 2
    assert "--help" in one_line(result.stderr)


def test_missing_setting_gets_one_line_and_exit_2() -> None:
    """A command needing ROI_DATABASE_URL says so in one line, exit code 2."""
    result = run("migrate")
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "roi-worker: error: configuration error: ROI_DATABASE_URL is required but not set"
    )


def test_unreachable_database_gets_one_line_without_the_password() -> None:
    """migrate against a closed port prints one line naming the server, and exits 1."""
    result = run("migrate", ROI_DATABASE_URL="postgresql://roi:hunter2@127.0.0.1:1/roi")
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "cannot connect to PostgreSQL at postgresql://roi:***@127.0.0.1:1/roi" in line
    assert "hunter2" not in result.stderr + result.stdout


def test_schema_prints_the_published_schema() -> None:
    """`roi-worker schema` prints exactly what schemas/ holds."""
    result = run("schema")
    assert result.returncode == 0
    assert result.stdout == schemas.published()[schemas.EXECUTION_EVENT_V1]


def test_check_events_reports_each_invalid_line() -> None:
    """check-events validates JSON Lines, names file:line and reason, and exits 1 on any error."""
    lines = [
        json_codec.dumps(example_document()),
        json_codec.dumps(example_document(success="yes")),
        "not json",
    ]
    result = run("check-events", "-", stdin="\n".join(lines).encode())
    assert result.returncode == 1
    out = result.stdout.splitlines()
    assert out[0].startswith("<stdin>:2: schema_violation: success: must be true or false")
    assert out[1].startswith("<stdin>:3: invalid_json")
    assert out[-1] == "1 valid, 2 invalid"


def test_check_events_passes_valid_files(tmp_path: Path) -> None:
    """A file of valid events exits 0."""
    path = tmp_path / "events.jsonl"
    path.write_text(json_codec.dumps(example_document()) + "\n")
    result = run("check-events", str(path))
    assert result.returncode == 0
    assert result.stdout.strip() == "1 valid, 0 invalid"


def test_check_events_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    """A missing input file is one line and exit 2."""
    result = run("check-events", str(tmp_path / "missing.jsonl"))
    assert result.returncode == 2
    assert "cannot read" in one_line(result.stderr)


def test_bad_url_is_a_configuration_error_without_the_password() -> None:
    """An unparseable ROI_DATABASE_URL gets one line naming it, exit 2, and no password."""
    result = run("migrate", ROI_DATABASE_URL="postgresql://roi:hunter2@[::1/roi")
    assert result.returncode == 2
    assert "ROI_DATABASE_URL" in one_line(result.stderr)
    assert "hunter2" not in result.stderr


def test_writing_schemas_onto_a_file_is_one_line(tmp_path: Path) -> None:
    """An unwritable --write target is reported in one line, not a traceback."""
    target = tmp_path / "a-file"
    target.write_text("")
    result = run("schema", "--write", str(target))
    assert result.returncode == 1
    assert str(target) in one_line(result.stderr)


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`roi-worker check-events | head -1` stops without a BrokenPipeError traceback."""
    path = tmp_path / "events.jsonl"
    path.write_text("not json\n" * 20_000)
    result = subprocess.run(
        ["/bin/bash", "-c", f"{sys.executable} -m worker check-events {path} | head -1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.stdout.startswith(f"{path}:1: invalid_json")
    assert result.stderr == ""


def test_kafka_log_storms_are_rate_limited() -> None:
    limit = RateLimit("kafka", interval=60)

    def record(name: str, message: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)

    first = record("kafka.net", "refused")
    assert limit.filter(first)
    assert not any(limit.filter(record("kafka.net", f"refused {n}")) for n in range(50))
    assert limit.filter(record("kafka.cluster", "another logger"))
    assert limit.filter(record("worker.consume.pipeline", "ours are never limited"))
    assert all(limit.filter(record("worker.consume.pipeline", "again")) for _ in range(5))


def test_stream_commands_collect_young_garbage_rarely_and_switch_threads_often() -> None:
    before, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        tune_for_throughput()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_SECONDS)
    finally:
        gc.set_threshold(*before)
        sys.setswitchinterval(interval)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report", "--output", "x.md"), "--output goes with --report"),
        (("report", "--report", "--format", "json"), "--report always writes Markdown"),
        (("report", "--limit", "0"), "must be a whole number >= 1, not '0'"),
        (("report", "--min-executions", "ten"), "must be a whole number >= 1, not 'ten'"),
        (("report", "--since", "7 days"), "is neither a number of days (7d, 30d, 90d) nor a date"),
        (("report", "--since", "2999-01-01"), "is in the future"),
        (("report", "--summary", "--pattern-id", "a"), "not allowed with argument"),
        (("report", "--format", "yaml"), "invalid choice: 'yaml'"),
    ],
)
def test_report_arguments_that_do_not_fit_get_one_line_and_exit_2(
    args: tuple[str, ...], message: str
) -> None:
    """Mistakes in report's options are refused before any database is contacted."""
    result = run(*args, ROI_DATABASE_URL="postgresql://roi@127.0.0.1:1/none")
    assert result.returncode == 2, result.stderr
    assert message in one_line(result.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("reconcile", "--topic", "no spaces"), "argument --topic: 'no spaces' is not a topic"),
        (("reconcile", "--group", ""), "argument --group: must be 1 to 249 characters"),
        (("reconcile", "--bogus"), "unrecognized arguments: --bogus"),
    ],
)
def test_reconcile_arguments_that_do_not_fit_get_one_line_and_exit_2(
    args: tuple[str, ...], message: str
) -> None:
    """A bad topic, group or flag of reconcile is refused in one line before any database is
    contacted, and the database password is never printed."""
    result = run(*args, ROI_DATABASE_URL="postgresql://roi:hunter2@127.0.0.1:1/none")
    assert result.returncode == 2, result.stderr
    assert message in one_line(result.stderr)
    assert "hunter2" not in result.stderr + result.stdout


def test_reconcile_against_an_unreachable_database_is_one_line_without_the_password() -> None:
    """reconcile needs only PostgreSQL; when it cannot connect it says where, redacted, exit 1."""
    result = run("reconcile", ROI_DATABASE_URL="postgresql://roi:hunter2@127.0.0.1:1/roi")
    assert result.returncode == 1
    assert "cannot connect to PostgreSQL at postgresql://roi:***@127.0.0.1:1/roi" in one_line(
        result.stderr
    )
    assert "hunter2" not in result.stderr + result.stdout


def loaded_by(code: str, **env: str) -> set[str]:
    """The top-level packages a new interpreter has imported once it has run `code`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
    environment.update(env)
    listing = "import sys; print(*sorted({name.split('.')[0] for name in sys.modules}))"
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\n{listing}"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    return set(result.stdout.split())


def test_building_the_parser_loads_no_client_driver_or_framework() -> None:
    """`roi-worker --help` starts in a blink (`make bench-startup`): every command's parser is
    built without importing what the commands use, which they import when they run."""
    loaded = loaded_by(
        "from worker.cli.main import build_parser; build_parser().parse_args(['report'])"
    )
    assert "worker" in loaded
    assert not loaded & (CLIENTS_AND_FRAMEWORKS | DRIVER_AND_MODELS), sorted(loaded)


def test_report_loads_the_database_driver_and_no_kafka_or_web_framework() -> None:
    """`report` imports psycopg and the analytics when it runs, never Kafka or FastAPI."""
    loaded = loaded_by(
        "from worker.cli.main import main; main(['report'])",
        ROI_DATABASE_URL="postgresql://roi@127.0.0.1:1/none",  # fails after its imports
    )
    assert "psycopg" in loaded
    assert not loaded & CLIENTS_AND_FRAMEWORKS, sorted(loaded & CLIENTS_AND_FRAMEWORKS)


def test_dlq_defaults_are_those_of_the_operations() -> None:
    """cli/dlq.py restates them so that its parser does not load Kafka: they must agree."""
    assert (cli_dlq.DEFAULT_SAMPLES, cli_dlq.DEFAULT_MAX_REDRIVES) == (
        dead_letters.DEFAULT_SAMPLES,
        dead_letters.DEFAULT_MAX_REDRIVES,
    )
