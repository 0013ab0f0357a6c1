"""`roi-worker dlq inspect` and `redrive` against the real broker, database and worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaProducer

from tests.helpers import wait_until
from tests.integration.events import Sample, expected_summary, sample_events
from tests.worker_harness import (
    PROCESS_TIMEOUT,
    Stream,
    WorkerProcess,
    end_offsets,
    produce,
    query,
    read_topic,
    start,
    wait_caught_up,
)
from worker.contract import json_codec
from worker.roi.summaries import find_drift
from worker.types import DeadLetter, Message

TRACE = ("traceparent", b"00-abc-01")


def dlq(stream: Stream, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs `roi-worker dlq ARGS` on the stream's topics, as an operator would."""
    result = subprocess.run(
        [sys.executable, "-m", "worker", "dlq", *args],
        env={**os.environ, **stream.env(**env)},
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def dlq_json(stream: Stream, *args: str) -> dict[str, Any]:
    result = dlq(stream, *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def counts(report: dict[str, Any]) -> dict[str, int]:
    """The redrive report's counts that are not zero."""
    names = (
        *("read", "redriven", "already_redriven", "repeat", "value_dropped", "still_invalid"),
        *("poison", "filtered_out", "failed"),
    )
    return {name: report[name] for name in names if report[name]}


def dead_letters(stream: Stream) -> int:
    return sum(end_offsets(stream.bootstrap_servers, stream.dlq_topic).values())


def wait_dead_letters(stream: Stream, count: int) -> None:
    wait_until(
        lambda: dead_letters(stream) >= count,
        timeout=PROCESS_TIMEOUT,
        what=f"{count} letters on {stream.dlq_topic}",
    )


def publish_letters(stream: Stream, letters: list[tuple[Any, list[tuple[str, bytes]]]]) -> None:
    """Publishes (key, value) records with their own headers to the dead-letter topic."""
    producer = KafkaProducer(bootstrap_servers=stream.bootstrap_servers, acks="all")
    try:
        futures = [
            producer.send(stream.dlq_topic, key=key, value=value, headers=headers)
            for (key, value), headers in letters
        ]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=0)
    finally:
        producer.close()


def publish_sample_letters(stream: Stream) -> None:
    """Five letters as the worker writes them: a database refusal and its repeated copy, one
    whose value was dropped, one redriven three times already, one redriven once."""

    def letter(offset: int, reason: str, headers: list[tuple[str, bytes | None]]) -> Any:
        message = Message(stream.topic, offset % 3, offset, 1_790_000_000_000, b"k", b"v", headers)
        return DeadLetter(message, reason, f"{reason}: test").headers()

    refused = letter(10, "database_rejected", [TRACE])
    publish_letters(
        stream,
        [
            ((b"k0", b'{"v": 0}'), refused),
            ((b"k0", b'{"v": 0}'), refused),
            (
                (b"big", b""),
                [*letter(11, "invalid_json", []), ("roi.error.value_dropped_bytes", b"2000000")],
            ),
            (
                (b"k3", b'{"v": 3}'),
                letter(12, "conflicting_duplicate", [("roi.redrive.count", b"3")]),
            ),
            (
                (b"k4", b'{"v": 4}'),
                letter(13, "conflicting_duplicate", [("roi.redrive.count", b"1"), TRACE]),
            ),
        ],
    )


def test_inspect_counts_reasons_and_shows_samples(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Inspect counts letters by reason and source, tells copies apart and shows safe samples."""
    valid = sample_events(20)
    invalid = [
        (b"json-1", b'{"schema_version": 1,'),
        (b"json-2", b"\x1b[31mred\x1b[0m"),
        (b"json-3", b"not json"),
        (b"utf8", b"\xff\xfe{}"),
        (
            b"schema-1",
            json_codec.dumps(
                {k: v for k, v in valid[0].document.items() if k != "success"}
            ).encode(),
        ),
        (
            b"schema-2",
            json_codec.dumps(
                {k: v for k, v in valid[1].document.items() if k != "success"}
            ).encode(),
        ),
    ]
    produce(stream.bootstrap_servers, stream.topic, [s.message for s in valid[2:]] + invalid)
    start(stream, workers, tmp_path)
    wait_caught_up(stream)
    wait_dead_letters(stream, 6)
    # Dead letters are at least once: the same source published twice.
    [copied] = [
        record
        for record in read_topic(stream.bootstrap_servers, stream.dlq_topic, expected=6)
        if dict(record.headers)["roi.error.reason"] == b"not_utf8"
    ]
    publish_letters(stream, [((copied.key, copied.value), list(copied.headers))])

    report = dlq_json(stream, "inspect", "--samples", "2")
    assert report["letters"] == 7
    assert report["distinct_sources"] == 6
    assert report["repeated_copies"] == 1
    assert report["by_reason"] == {"invalid_json": 3, "not_utf8": 2, "schema_violation": 2}
    assert report["by_source_topic"] == {stream.topic: 7}
    assert report["oldest"] <= report["newest"]
    assert {reason: len(s) for reason, s in report["samples"].items()} == {
        "invalid_json": 2,
        "not_utf8": 2,
        "schema_violation": 2,
    }
    sample = report["samples"]["schema_violation"][0]
    assert sample["source"]["topic"] == stream.topic
    assert sample["fields"] == "success:missing"
    assert "success: is required" in sample["message"]
    assert sample["key"] in ("schema-1", "schema-2")
    assert sample["value"].startswith('{"')
    assert report["samples"]["not_utf8"][0]["value"] == "\\xff\\xfe{}"

    text = dlq(stream, "inspect", "--samples", "3")
    assert text.returncode == 0, text.stderr
    assert "7 letters from 6 distinct sources (1 repeated copy)" in text.stdout
    assert "invalid_json: 3 of 3 shown" in text.stdout
    assert "\x1b" not in text.stdout  # the terminal escape is shown, not obeyed
    assert "value:  \\x1b[31mred\\x1b[0m (12 bytes)" in text.stdout
    assert "value:  \\xff\\xfe{} (4 bytes)" in text.stdout


def test_a_fixed_event_is_stored_once_after_redrive(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Events a database rule refused land once the rule is relaxed and they are redriven."""
    with psycopg.connect(stream.database_url) as conn:
        conn.execute(
            "ALTER TABLE pattern_executions ADD CONSTRAINT not_blocked "
            "CHECK (workflow_id IS DISTINCT FROM 'blocked')"
        )
    samples = sample_events(60)
    blocked = [Sample(dict(s.document, workflow_id="blocked")) for s in samples[:5]]
    samples = blocked + samples[5:]
    messages = [s.message for s in samples] + [(b"bad", b"not json")]
    produce(stream.bootstrap_servers, stream.topic, messages)
    start(stream, workers, tmp_path)
    wait_caught_up(stream)
    wait_dead_letters(stream, 6)
    assert query(stream.database_url, "SELECT count(*) FROM pattern_executions") == [(55,)]

    with psycopg.connect(stream.database_url) as conn:  # the fix
        conn.execute("ALTER TABLE pattern_executions DROP CONSTRAINT not_blocked")
    # The running worker's staging table still has the constraint (it copied it when its
    # session began): it must notice the fix by itself, without a restart.
    report = dlq_json(stream, "redrive", "--execute", "--reason", "database_rejected")
    assert counts(report) == {"read": 6, "redriven": 5, "filtered_out": 1}
    assert report["complete"] is True
    wait_caught_up(stream)

    ids = {uuid.UUID(s.document["event_id"]) for s in samples}
    rows = query(stream.database_url, "SELECT event_id FROM pattern_executions")
    assert sorted(row[0] for row in rows) == sorted(ids)
    summary = query(
        stream.database_url,
        "SELECT pattern_id, total_executions, successful_executions, total_time_saved_seconds,"
        " total_cost_saved_usd FROM pattern_roi_summary",
    )
    assert {row[0]: tuple(row[1:]) for row in summary} == expected_summary(samples)
    with psycopg.connect(stream.database_url) as conn:
        assert find_drift(conn) == []
    assert dead_letters(stream) == 6  # nothing failed again


def test_a_poison_event_stops_at_the_redrive_limit(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """An event that fails every time is redriven --max-redrives times, then left as poison."""
    with psycopg.connect(stream.database_url) as conn:  # a rule no fix will relax
        conn.execute(
            "ALTER TABLE pattern_executions ADD CONSTRAINT no_poison "
            "CHECK (workflow_id IS DISTINCT FROM 'poison')"
        )
    poison = Sample(dict(sample_events(1)[0].document, workflow_id="poison"))
    produce(stream.bootstrap_servers, stream.topic, [poison.message], headers=[TRACE])
    start(stream, workers, tmp_path)
    wait_dead_letters(stream, 1)

    for round_ in (1, 2):
        report = dlq_json(stream, "redrive", "--execute", "--max-redrives", "2")
        expected = {"read": round_, "redriven": 1, "already_redriven": round_ - 1}
        assert counts(report) == {name: n for name, n in expected.items() if n}
        wait_dead_letters(stream, round_ + 1)  # the worker dead-lettered it again

    topic_end = end_offsets(stream.bootstrap_servers, stream.topic)
    report = dlq_json(stream, "redrive", "--execute", "--max-redrives", "2")
    assert counts(report) == {"read": 3, "already_redriven": 2, "poison": 1}
    assert report["poison_letters"][0]["dead_letter"] == f"{stream.dlq_topic}/0@2"
    assert report["poison_letters"][0]["redrive_count"] == 2
    assert end_offsets(stream.bootstrap_servers, stream.topic) == topic_end

    letters = read_topic(stream.bootstrap_servers, stream.dlq_topic, expected=3)
    headers = [dict(letter.headers) for letter in sorted(letters, key=lambda r: r.offset)]
    assert [h.get("roi.redrive.count") for h in headers] == [None, b"1", b"2"]
    assert headers[2]["roi.redrive.source"] == f"{stream.dlq_topic}/0/1".encode()
    assert all(h["traceparent"] == TRACE[1] for h in headers)
    assert all(h["roi.error.reason"] == b"database_rejected" for h in headers)
    assert query(
        stream.database_url,
        'SELECT "offset", redrive_count FROM redriven_dead_letters ORDER BY "offset"',
    ) == [(0, 1), (1, 2)]


def test_letters_that_still_fail_validation_are_not_published(
    stream: Stream, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Bytes the worker would refuse again are held back, unrecorded, so a later release that
    accepts them can still redrive them; the workers never see them again meanwhile."""
    produce(stream.bootstrap_servers, stream.topic, [(b"garbage", b"not json")])
    start(stream, workers, tmp_path)
    wait_dead_letters(stream, 1)
    topic_end = end_offsets(stream.bootstrap_servers, stream.topic)
    for _ in range(2):
        report = dlq_json(stream, "redrive", "--execute")
        assert counts(report) == {"read": 1, "still_invalid": 1}
    assert end_offsets(stream.bootstrap_servers, stream.topic) == topic_end
    assert query(stream.database_url, "SELECT count(*) FROM redriven_dead_letters") == [(0,)]


def test_a_second_redrive_publishes_nothing_new(stream: Stream) -> None:
    """Each letter is re-published at most once, with our headers replaced and the rest kept."""
    publish_sample_letters(stream)
    first = dlq_json(stream, "redrive", "--execute")
    assert counts(first) == {
        "read": 5,
        "redriven": 2,
        "repeat": 1,
        "value_dropped": 1,
        "poison": 1,
    }
    assert [ref["dead_letter"] for ref in first["value_dropped_letters"]] == [
        f"{stream.dlq_topic}/0@2"
    ]
    records = read_topic(stream.bootstrap_servers, stream.topic, expected=2)
    by_key = {record.key: record for record in records}
    assert set(by_key) == {b"k0", b"k4"}
    assert by_key[b"k0"].value == b'{"v": 0}'
    assert by_key[b"k0"].headers == [
        TRACE,
        ("roi.redrive.count", b"1"),
        ("roi.redrive.source", f"{stream.dlq_topic}/0/0".encode()),
    ]
    assert dict(by_key[b"k4"].headers)["roi.redrive.count"] == b"2"
    assert query(
        stream.database_url,
        'SELECT "offset", redrive_count FROM redriven_dead_letters ORDER BY "offset"',
    ) == [(0, 1), (1, 1), (4, 2)]

    topic_end = end_offsets(stream.bootstrap_servers, stream.topic)
    second = dlq_json(stream, "redrive", "--execute")
    assert counts(second) == {"read": 5, "already_redriven": 3, "value_dropped": 1, "poison": 1}
    by_reason = dlq_json(stream, "redrive", "--execute", "--reason", "database_rejected")
    assert counts(by_reason) == {"read": 5, "already_redriven": 2, "filtered_out": 3}
    assert end_offsets(stream.bootstrap_servers, stream.topic) == topic_end


def test_a_dry_run_publishes_and_records_nothing(stream: Stream) -> None:
    """Without --execute (or with --dry-run), a redrive counts what it would do, and does none
    of it."""
    publish_sample_letters(stream)
    dry = dlq_json(stream, "redrive", "--dry-run")
    assert dry["dry_run"] is True
    assert end_offsets(stream.bootstrap_servers, stream.topic) == {0: 0, 1: 0, 2: 0}
    assert query(stream.database_url, "SELECT count(*) FROM redriven_dead_letters") == [(0,)]

    text = dlq(stream, "redrive", "--dry-run")
    assert text.returncode == 0, text.stderr
    assert "nothing was published or recorded: add --execute to apply" in text.stdout
    plan = dlq_json(stream, "redrive")  # without --execute: the plan, as with --dry-run
    assert plan == dry
    assert end_offsets(stream.bootstrap_servers, stream.topic) == {0: 0, 1: 0, 2: 0}
    real = dlq_json(stream, "redrive", "--execute")
    assert counts(real) == counts(dry)


def test_a_recreated_dead_letter_topic_is_not_mistaken_for_redriven(stream: Stream) -> None:
    """Recorded offsets beyond the topic's end stop the redrive, naming the rows to forget."""
    publish_sample_letters(stream)
    with psycopg.connect(stream.database_url) as conn:
        conn.execute(
            'INSERT INTO redriven_dead_letters (topic, partition, "offset", redrive_count) '
            "VALUES (%s, 0, 5, 1)",
            (stream.dlq_topic,),
        )
    result = dlq(stream, "redrive", "--execute")
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "was the topic recreated?" in line
    assert f"DELETE FROM redriven_dead_letters WHERE topic = '{stream.dlq_topic}'" in line
    assert end_offsets(stream.bootstrap_servers, stream.topic) == {0: 0, 1: 0, 2: 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--reason", "bogus"), "argument --reason: no reason 'bogus'"),
        (("--max-redrives", "0"), "argument --max-redrives: must be a whole number >= 1"),
        (("--to-topic", "events.dlq"), "redriving events.dlq into itself"),
        (("--execute", "--dry-run"), "argument --dry-run: not allowed with argument --execute"),
    ],
)
def test_bad_redrive_arguments_get_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    """Arguments that cannot work are refused in one line before anything is read."""
    result = subprocess.run(
        [sys.executable, "-m", "worker", "dlq", "redrive", *args],
        env={
            **{name: value for name, value in os.environ.items() if not name.startswith("ROI_")},
            "ROI_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "ROI_TOPIC": "events",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]
