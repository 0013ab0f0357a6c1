"""Every kafka-python client of roi-worker is made here, and reading with a consumer whatever the
log holds.

`new_consumer`, `new_producer` and `new_admin` are the one way to make each kind of client
(tests/unit/kafka/test_door.py checks that no other module constructs one): they take the
connection and security settings from `KafkaSettings.kafka_config`, so no client can forget
TLS or SASL; a consumer reads committed events only (`KafkaSettings.consumer_config`) and has
the work-around for a kafka-python 3.0 hang described at `_drain_on_error`. A client that
cannot be made raises BrokerUnavailableError, and `our_error` translates kafka-python's other
errors for the modules of this package that hand them on. Every client, the probe below
included, is built by `_built`, which works around two ways kafka-python 3.0.12 leaves an I/O
thread or a socket behind: when the client cannot be made, and when it is closed with bytes
still to send (`_closing_every_socket`).

`RecordReader.poll` is `consumer.poll` for the pipeline and the range reader, as Messages:
- a record the client cannot decode (kafka-python raises on it at every poll, for ever: a bad
  CRC, a header key that is not UTF-8, a broken structure, a codec error) becomes a Message
  with `undecodable` set, and the consumer is seeked past it. What kafka-python does is exact:
  it returns the records before the bad one, raises on the next poll, and leaves the
  consumer's position at the first offset it did not return. Which partition failed, its
  error does not always say, so a probe (a second, group-less consumer) reads each readable
  partition at the consumer's position; the one that fails there is it, and the probe goes on
  to the next offsets while they fail too: a record after a bad one in the same record batch
  cannot be read either (a fetch starts at the batch's first record). Every offset skipped is
  one such Message, so the pipeline dead-letters each and stores its offset like any other's.
  If no partition fails when probed, the poll is tried again; if that fails the same way, the
  client cannot say where the record is: FatalError;
- `RecordReader.skipped` tells, as `Skipped` entries, where the consumer read past the last
  record it returned (transaction markers, aborted transactions), so that stored offsets reach
  the end of the partition.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError, KafkaError, UnsupportedCodecError

from ..errors import BrokerUnavailableError, FatalError
from ..settings import KafkaSettings
from ..types import Message, Skipped

log = logging.getLogger(__name__)


def message_of(record: Any) -> Message:
    """A kafka-python ConsumerRecord as the pipeline's Message: the edge past which no client
    type goes."""
    return Message(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        list(record.headers or ()),
    )


PROBE_POLL_MS: Final = 200
PROBE_SECONDS: Final = 15.0  # to read one offset, before the broker counts as unavailable
PROBE_FETCH_WAIT_MS: Final = 100  # a fetch at a partition's end answers this soon
KAFKA_TIMEOUT_MS: Final = 15000
_NAMED_PARTITION = re.compile(r"TopicPartition\(topic='([^']*)', partition=(\d+)\)")


def new_consumer(settings: KafkaSettings, **config: Any) -> KafkaConsumer:
    """A KafkaConsumer with `settings.consumer_config()` and `config` (which may not change
    the isolation level). Raises BrokerUnavailableError when it cannot reach Kafka."""
    if "isolation_level" in config:
        raise ValueError("every consumer reads committed events only")
    with _reaching(settings):
        consumer = _built(KafkaConsumer, {**settings.consumer_config(), **config})
    _drain_on_error(consumer)
    return consumer


def new_producer(settings: KafkaSettings, **config: Any) -> KafkaProducer:
    """A KafkaProducer with `settings.kafka_config()` and `config`. Raises
    BrokerUnavailableError when it cannot reach Kafka."""
    with _reaching(settings):
        return _built(KafkaProducer, {**settings.kafka_config(), **config})


def new_admin(settings: KafkaSettings, **config: Any) -> KafkaAdminClient:
    """A KafkaAdminClient with `settings.kafka_config()` and `config`. Raises
    BrokerUnavailableError when it cannot reach Kafka."""
    with _reaching(settings):
        return _built(KafkaAdminClient, {**settings.kafka_config(), **config})


def _built(client_class: Any, config: Mapping[str, Any]) -> Any:
    """`client_class(**config)`, a kafka-python client whose network client closes every
    socket it opened (`_closing_every_socket`).

    When the constructor raises (the bootstrap servers do not answer, say), kafka-python
    leaves the network client it made running: an I/O thread, its selector and sockets, for
    the life of the process. A worker makes one at every attempt while Kafka is down, so that
    network client is closed here.
    """
    make_network = getattr(client_class, "DEFAULT_CONFIG", {}).get("kafka_client")
    if make_network is None:
        log.warning("kafka-python's clients changed: one that cannot be made may stay running")
        return client_class(**config)
    made: list[Any] = []

    def network_client(**options: Any) -> Any:
        network = make_network(**options)
        made.append(network)
        _closing_every_socket(network)
        return network

    try:
        return client_class(**{**config, "kafka_client": network_client})
    except BaseException:
        for network in made:
            with contextlib.suppress(Exception):  # the constructor's error is the one to tell
                network.close()
        raise


def _closing_every_socket(network: Any) -> None:
    """Makes closing `network` (a kafka-python network client) close every socket it opened.

    kafka-python 3.0.12 closes a connection that still has bytes to send only once its I/O
    thread has sent them, and close() stops that thread first: a request queued just before
    close() leaves its connection's socket open and unreferenced until the garbage collector
    finds it, whenever that is, with a ResourceWarning. Once the thread has stopped nothing
    else uses the sockets, so whatever is still open is closed.
    """
    manager: Any = getattr(network, "_manager", None)
    loop: Any = getattr(network, "_net", None)
    if not hasattr(manager, "_conns") or not hasattr(loop, "_io_thread"):
        log.warning("kafka-python's network client changed: a closed client may leave a socket")
        return
    close = network.close

    def close_every_socket(node_id: Any = None) -> None:
        try:
            close(node_id)
        finally:
            if node_id is None and loop._io_thread is None:  # stopped (or never started)
                for connection in list(manager._conns.values()):
                    transport: Any = getattr(connection, "transport", None)
                    sock = getattr(transport, "_sock", None)
                    if sock is not None:
                        transport._sock = None
                        sock.close()

    network.close = close_every_socket


@contextlib.contextmanager
def _reaching(settings: KafkaSettings) -> Iterator[None]:
    """Making a client connects to the bootstrap servers: its failure is an outage."""
    try:
        yield
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc


def our_error(exc: BaseException) -> BrokerUnavailableError | FatalError:
    """kafka-python's `exc` as ours, with the same message: FatalError when Kafka says that
    trying again cannot help (a record too large, a topic not authorised), else
    BrokerUnavailableError."""
    if isinstance(exc, KafkaError) and not exc.retriable:
        return FatalError(str(exc))
    return BrokerUnavailableError(str(exc))


class _DrainingRecords(Fetcher.PartitionRecords):  # type: ignore[misc]  # untyped base
    def take(self, n: int | None = None) -> list[Any]:
        try:
            return super().take(n)  # type: ignore[no-any-return]
        except Exception:
            self.drain()
            raise


def _drain_on_error(consumer: KafkaConsumer) -> None:
    """Makes the records of a fetch that failed to decode be dropped, so they are fetched again.

    kafka-python 3.0.12 keeps them, with an iterator that the error ended. A later poll that
    reaches them at the same position (the partition was paused when the error was due, then
    resumed) gets nothing from them and loops inside poll() for ever, at full CPU. Dropped,
    they are fetched again and the error comes back, as at every other poll.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None or not hasattr(fetcher, "PartitionRecords"):
        log.warning("kafka-python's fetcher changed: undecodable records may hang the consumer")
        return
    fetcher.PartitionRecords = _DrainingRecords


def may_be_undecodable(exc: BaseException) -> bool:
    """Whether poll() may have raised `exc` for a record it cannot decode: kafka-python's
    record errors, or whatever a codec raises (gzip, snappy, lz4 and zstd each their own)."""
    if isinstance(exc, CorruptRecordError | UnsupportedCodecError):
        return True
    return isinstance(exc, Exception) and not isinstance(exc, KafkaError)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class RecordReader:
    """Polls `consumer` (module docstring), and tells what it skipped (`skipped`)."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer
        self._unexplained = False  # the last poll failed and no partition failed when probed
        # Per partition, the offset after the last one handed out (or where it was seeked).
        self._reached: dict[TopicPartition, int] = {}

    def poll(self, timeout_ms: int, max_records: int) -> list[Message]:
        """At most `max_records` Messages. Raises what poll() raises, but for undecodable
        records; FatalError when the client cannot say where one is, BrokerUnavailableError
        when the probe cannot read."""
        try:
            polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except Exception as exc:
            if not may_be_undecodable(exc):
                raise
            messages = self._undecodable(exc, max_records)
        else:
            self._unexplained = False
            messages = [message_of(r) for records in polled.values() for r in records]
            for tp, records in polled.items():
                self._reached[tp] = records[-1].offset + 1
        return messages

    def seeked(self, offsets: Mapping[TopicPartition, int]) -> None:
        """The consumer was seeked: reading goes on from these offsets."""
        self._reached.update(offsets)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """The partitions are no longer read (revoked)."""
        for tp in partitions:
            self._reached.pop(tp, None)

    def skipped(self) -> list[Message]:
        """A Skipped entry for each partition the consumer has read past the last offset
        handed out: transaction markers, events of aborted transactions. Asked once per batch,
        not per poll: a position costs a scan of every assigned partition in kafka-python, so
        it is asked only where the broker's high watermark says there is more to read."""
        consumer = self._consumer
        entries: list[Message] = []
        for tp, reached in self._reached.items():
            highwater = consumer.highwater(tp)  # from the last fetch: no round trip
            if highwater is None or highwater <= reached:
                continue
            with contextlib.suppress(KafkaError):
                position = consumer.position(tp, timeout_ms=0)  # known: no round trip
                if position is not None and position > reached:
                    entries.append(Skipped.up_to(tp.topic, tp.partition, position))
                    self._reached[tp] = position
        return entries

    def _readable(self) -> list[TopicPartition]:
        consumer = self._consumer
        paused = consumer.paused()
        return sorted(tp for tp in consumer.assignment() if tp not in paused)

    def _undecodable(self, error: Exception, max_records: int) -> list[Message]:
        """Finds the partition and offsets that failed, seeks past them and returns them."""
        consumer = self._consumer
        readable = self._readable()
        named = _NAMED_PARTITION.search(str(error))
        if named is not None:  # a bad CRC names it: probe that one first
            first = TopicPartition(named.group(1), int(named.group(2)))
            readable.sort(key=lambda tp: tp != first)
        try:
            starts = {tp: consumer.position(tp, timeout_ms=KAFKA_TIMEOUT_MS) for tp in readable}
        except KafkaError as exc:
            raise BrokerUnavailableError(f"Kafka: {describe(exc)}") from exc
        with self._probe() as probe:
            for tp in readable:
                start = starts[tp]
                if start is None:
                    continue
                failed = probe.failures(tp, start, max_records)
                if not failed:
                    continue
                after = failed[-1][0] + 1
                consumer.seek(tp, after)
                self._reached[tp] = after
                log.warning(
                    "%s/%d: the Kafka client cannot decode offset%s %s (%s); dead-lettered as "
                    "undecodable_record, reading on from %d",
                    tp.topic,
                    tp.partition,
                    "s" if len(failed) > 1 else "",
                    f"{start} to {after - 1}" if len(failed) > 1 else start,
                    failed[0][1],
                    after,
                )
                return [
                    Message.of_undecodable(tp.topic, tp.partition, offset, message)
                    for offset, message in failed
                ]
        if not self._unexplained:
            # Once may be a fault of the read itself (a fetch damaged on the way): poll again.
            self._unexplained = True
            log.warning(
                "the Kafka client failed to read a record (%s) but no partition fails when "
                "read again; polling again",
                describe(error),
            )
            return []
        where = ", ".join(f"{tp.topic}/{tp.partition}@{starts[tp]}" for tp in readable)
        raise FatalError(
            f"the Kafka client failed to read a record ({describe(error)}) but none of the "
            f"partitions it was reading ({where or 'none'}) fails when read again, so it "
            "cannot be skipped; stopping rather than failing for ever. See docs/operations.md, "
            "'Undecodable records'"
        ) from error

    @contextlib.contextmanager
    def _probe(self) -> Iterator[_Probe]:
        config = {
            **self._consumer.config,
            "client_id": f"{self._consumer.config['client_id']}-probe",
            "group_id": None,
            "enable_auto_commit": False,
            "max_poll_records": 1,
            "fetch_max_wait_ms": PROBE_FETCH_WAIT_MS,
        }
        try:
            consumer = _built(KafkaConsumer, config)
        except KafkaError as exc:
            raise BrokerUnavailableError(f"Kafka: {describe(exc)}") from exc
        _drain_on_error(consumer)
        try:
            yield _Probe(consumer)
        except KafkaError as exc:
            raise BrokerUnavailableError(f"Kafka: {describe(exc)}") from exc
        finally:
            with contextlib.suppress(Exception):  # it read nothing worth waiting for
                consumer.close(autocommit=False, timeout_ms=1000)


class _Probe:
    """Reads one offset at a time, to tell which ones the client cannot decode."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer

    def failures(self, tp: TopicPartition, start: int, limit: int) -> list[tuple[int, str]]:
        """(offset, error) of each offset from `start` on that cannot be decoded, until one
        can (or holds no record, or is the end), at most `limit` of them."""
        consumer = self._consumer
        consumer.assign([tp])
        end = consumer.end_offsets([tp], timeout_ms=KAFKA_TIMEOUT_MS)[tp]
        failed: list[tuple[int, str]] = []
        offset = start
        while offset < end and len(failed) < limit:
            error = self._error_at(tp, offset, end)
            if error is None:
                break
            failed.append((offset, error))
            offset += 1
        return failed

    def _error_at(self, tp: TopicPartition, offset: int, end: int) -> str | None:
        """The client's error reading `offset`, or None when it reads a record there or finds
        none (a transaction marker, say: the consumer skips those itself)."""
        consumer = self._consumer
        consumer.seek(tp, offset)
        deadline = time.monotonic() + PROBE_SECONDS
        while True:
            try:
                if consumer.poll(timeout_ms=PROBE_POLL_MS, max_records=1):
                    return None
            except Exception as exc:
                if not may_be_undecodable(exc):
                    raise
                return describe(exc)
            position = consumer.position(tp, timeout_ms=KAFKA_TIMEOUT_MS)
            if position is not None and (position > offset or position >= end):
                return None
            if time.monotonic() > deadline:
                raise BrokerUnavailableError(
                    f"cannot read {tp.topic}/{tp.partition} at offset {offset} to tell whether "
                    f"the Kafka client can decode it (no answer in {PROBE_SECONDS:g} s)"
                )
