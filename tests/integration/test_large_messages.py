"""Large messages: a batch is bounded in bytes, so the worker's memory stays bounded too."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import wait_until
from tests.integration.events import sample_events
from tests.integration.test_pipeline import assert_stored_exactly
from tests.worker_harness import Stream, WorkerProcess, produce, read_topic, wait_caught_up

MESSAGE_BYTES = 1_000_000  # just under the broker's default message.max.bytes
LARGE_MESSAGES = 120
RSS_LIMIT_BYTES = 250 * 1024 * 1024


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes: the highest it has been, not now."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_one_megabyte_messages_keep_the_worker_under_250_mb(stream: Stream, tmp_path: Path) -> None:
    """120 messages of 1 MB with a 5 s batch window: batches close at ROI_BATCH_MAX_BYTES, the
    peak resident memory stays under 250 MB, the small events are stored and every large one
    is dead-lettered whole."""
    samples = sample_events(200)
    large = b'{"padding": "' + b"x" * (MESSAGE_BYTES - 15) + b'"}'
    messages: list[tuple[bytes | None, bytes | None]] = []
    for index, sample in enumerate(samples):
        messages.append(sample.message)
        if index < LARGE_MESSAGES:
            messages.append((b"big", large))
    worker = WorkerProcess(
        stream,
        tmp_path / "worker.log",
        ROI_BATCH_MAX_SECONDS="5",
        ROI_DLQ_MAX_RATIO="0",  # half the messages are invalid on purpose
    )
    try:
        worker.wait_ready()
        produce(stream.bootstrap_servers, stream.topic, messages)
        wait_caught_up(stream)
        peak = peak_rss(worker.process.pid)
        assert_stored_exactly(stream, samples)
        letters = read_topic(stream.bootstrap_servers, stream.dlq_topic, expected=LARGE_MESSAGES)
        assert len(letters) == LARGE_MESSAGES
        assert all(letter.value == large for letter in letters)
        assert {dict(letter.headers)["roi.error.reason"] for letter in letters} == {
            b"schema_violation"
        }
        wait_until(
            lambda: (worker.sample("roi_worker_batch_size_count") or 0) >= 5,
            timeout=10,
            what="the batch counter",
        )
        assert worker.stop() == 0
    finally:
        worker.close()
    assert peak < RSS_LIMIT_BYTES, f"peak RSS {peak / 2**20:.0f} MiB"
