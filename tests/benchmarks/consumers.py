"""The benchmark's own consumers, each run as a child process so it is measured like the worker.

    python -m tests.benchmarks.consumers naive --topic T --group G --seconds 30 --result F
    python -m tests.benchmarks.consumers read --topic T [--parse] [--config KEY=VALUE] --result F

`naive` is the baseline: what a per-event consumer written without care does. For each message:
json.loads, INSERT the execution (ON CONFLICT DO NOTHING), recompute that pattern's summary row
from every stored execution of the pattern, COMMIT, then commit the message's offset to Kafka.
It runs for `--seconds` from its first message.

`read` reads the topic from the beginning to its end offsets without a group and stores
nothing: the ceiling kafka-python sets. With `--parse` it also decodes, validates and
fingerprints every event with the worker's own code (worker.consume.prepare.prepare): the ceiling of
the Python stages before the database.

Both read ROI_KAFKA_BOOTSTRAP_SERVERS (and `naive` ROI_DATABASE_URL) and write a JSON object
{"events": N, "seconds": S} to `--result`; `read` adds "loop_cpu_seconds", the process's CPU
(all threads) from its first poll to its last, start-up left out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from worker.consume.prepare import prepare
from worker.kafka.client import message_of
from worker.roi.summaries import SPANS, SUMMARY, SUMS, WITH_SAVINGS

POLL_MS: Final = 200
MAX_READ_SECONDS: Final = 1800.0

_INSERT: Final = """
INSERT INTO pattern_executions (
    event_id, schema_version, pattern_id, executed_at, success, execution_time_seconds,
    estimated_time_seconds, actual_cost, estimated_cost, workflow_id, error_message, source,
    source_topic, source_partition, source_offset)
VALUES (%(event_id)s, %(schema_version)s, %(pattern_id)s, %(executed_at)s, %(success)s,
        %(execution_time_seconds)s, %(estimated_time_seconds)s, %(actual_cost)s,
        %(estimated_cost)s, %(workflow_id)s, %(error_message)s, %(source)s,
        %(topic)s, %(partition)s, %(offset)s)
ON CONFLICT (event_id) DO NOTHING
"""
_RECOMPUTE: Final = (
    f"INSERT INTO {SUMMARY.name} AS t ({', '.join(SUMMARY.columns)}) "
    + SUMMARY.aggregate_select(
        f"(SELECT {WITH_SAVINGS} FROM pattern_executions WHERE pattern_id = %(pattern_id)s) AS e"
    )
    + " ON CONFLICT (pattern_id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in (*SUMS, *SPANS))
    + ", last_updated = now()"
)
_OPTIONAL: Final = ("workflow_id", "error_message", "source")


def naive(topic: str, group: str, seconds: float) -> dict[str, float]:
    """The baseline (module docstring): per event, one transaction and one Kafka commit."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=os.environ["ROI_KAFKA_BOOTSTRAP_SERVERS"].split(","),
        client_id="roi-bench-naive",
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    count, started = 0, None
    with psycopg.connect(os.environ["ROI_DATABASE_URL"]) as conn:
        for record in _records(consumer):
            started = started or time.monotonic()
            if time.monotonic() - started >= seconds:
                break
            _store_one(conn, record)
            offset = OffsetAndMetadata(record.offset + 1, "", -1)
            consumer.commit({TopicPartition(record.topic, record.partition): offset})
            count += 1
    elapsed = time.monotonic() - started if started else 0.0
    consumer.close(autocommit=False)
    return {"events": count, "seconds": elapsed}


def _records(consumer: KafkaConsumer) -> Iterator[Any]:
    while True:
        for records in consumer.poll(timeout_ms=POLL_MS).values():
            yield from records


def _store_one(conn: psycopg.Connection[Any], record: Any) -> None:
    event = json.loads(record.value, parse_float=Decimal)
    params = {**dict.fromkeys(_OPTIONAL), **event}
    params.update(topic=record.topic, partition=record.partition, offset=record.offset)
    conn.execute(_INSERT, params)
    conn.execute(_RECOMPUTE, {"pattern_id": event["pattern_id"]})
    conn.commit()


def read(topic: str, parse: bool, config: dict[str, Any]) -> dict[str, float]:
    """Reads every partition from its beginning to its end offset as of the start."""
    consumer = KafkaConsumer(
        bootstrap_servers=os.environ["ROI_KAFKA_BOOTSTRAP_SERVERS"].split(","),
        client_id="roi-bench-read",
        group_id=None,
        enable_auto_commit=False,
        **config,
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    ends = consumer.end_offsets(partitions)
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    count, started, cpu = 0, time.monotonic(), time.process_time()
    while any(consumer.position(tp) < end for tp, end in ends.items()):
        if time.monotonic() - started > MAX_READ_SECONDS:
            raise TimeoutError(f"read {count:,} events of {topic} in {MAX_READ_SECONDS:g} s")
        polled = consumer.poll(timeout_ms=POLL_MS, max_records=5000)
        for records in polled.values():
            count += len(records)
            if parse:
                _parse(records)
    elapsed, loop_cpu = time.monotonic() - started, time.process_time() - cpu
    consumer.close()
    return {"events": count, "seconds": elapsed, "loop_cpu_seconds": loop_cpu}


def _parse(records: list[Any]) -> None:
    messages = [message_of(record) for record in records]  # as the worker builds them
    batch = prepare(messages, now=datetime.now(UTC), closed=time.monotonic())
    if batch.letters:
        raise ValueError(f"{len(batch.letters)} generated events are invalid: {batch.letters[0]}")


def _config(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, int(value) if value.isdigit() else value


def main() -> None:
    parser = argparse.ArgumentParser(prog="tests.benchmarks.consumers")
    parser.add_argument("mode", choices=("naive", "read"))
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--parse", action="store_true")
    parser.add_argument("--config", type=_config, action="append", default=[])
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    if args.mode == "naive":
        result = naive(args.topic, args.group, args.seconds)
    else:
        result = read(args.topic, args.parse, dict(args.config))
    args.result.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
