"""The consumer group member of `roi-worker run`: worker.types.GroupConsumer over kafka-python.

Everything the pipeline asks of Kafka goes through here, and comes back in the pipeline's terms:
partitions as `Partition` tuples (a TopicPartition never leaves worker/kafka/), records as
`Message` (worker.kafka.client.RecordReader, which also turns records the client cannot decode
into dead letters to be), and the client's errors as BrokerUnavailableError (back off and retry)
or, for a commit a rebalance refused, a False.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Final

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata

from ..errors import BrokerUnavailableError
from ..settings import Settings
from ..types import Message, Partition, RebalanceListener
from .client import RecordReader, new_consumer
from .topics import ensure_topics

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_MS: Final = 5000
CLOSE_TIMEOUT_MS: Final = 3000
RECONNECT_BACKOFF_MAX_MS: Final = 1000  # back within a second or two of the broker's return
# How long making the client waits for the broker: at start-up, kafka-python's 30 s (a worker
# may start just before the broker); later (a rejoin) the loop must not block that long, as it
# retries anyway.
START_TIMEOUT_MS: Final = 30_000
REJOIN_TIMEOUT_MS: Final = 5000
# What a commit gets while the group is rebalancing or after this member lost its partitions.
REBALANCE_REFUSALS: Final = (
    CommitFailedError,
    RebalanceInProgressError,
    IllegalGenerationError,
    UnknownMemberIdError,
)


class KafkaGroupConsumer:
    """A member of group ROI_GROUP_ID reading ROI_TOPIC, with a new client at every `join`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._consumer: KafkaConsumer | None = None
        self._reader: RecordReader | None = None

    def join(self, listener: RebalanceListener, *, first: bool) -> None:
        """Makes the client and subscribes (types.GroupConsumer.join). The first join checks
        that the topic and the dead-letter topic exist (or makes them, and the ratings topic,
        with ROI_CREATE_TOPICS): ConfigurationError names a missing one. Raises
        BrokerUnavailableError when the broker does not answer in time: 30 s at start-up, 5 s
        for a rejoin."""
        settings = self._settings
        if first:
            topics = [settings.topic, settings.dead_letter_topic]
            if settings.create_topics:
                # Made now too. Without ROI_CREATE_TOPICS a missing ratings topic only holds
                # back the rating events (worker/consume/ratings_publisher.py), not the worker.
                topics.append(settings.ratings_topic)
            ensure_topics(settings, topics, create=settings.create_topics)
        consumer = new_consumer(  # raises BrokerUnavailableError
            settings,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            max_poll_records=settings.batch_max_messages,
            **settings.consumer_fetch_config(),
            # Incremental rebalances: a joining or leaving replica moves only the
            # partitions that change owner; the others keep flowing.
            partition_assignment_strategy=(CooperativeStickyAssignor,),
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_session_timeout_ms // 15,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            bootstrap_timeout_ms=START_TIMEOUT_MS if first else REJOIN_TIMEOUT_MS,
        )
        reader = RecordReader(consumer)
        try:
            if first:
                # Topic metadata first: a member that joins without it is assigned nothing,
                # and gets its partitions only a rebalance later (about a second). Its wait
                # has no bound of its own, so a rejoin takes that second instead.
                consumer.partitions_for_topic(settings.topic)
            consumer.subscribe([settings.topic], listener=_Listener(reader, listener))
        except KafkaError as exc:
            _close_quietly(consumer)
            raise _unavailable(exc) from exc
        self._consumer, self._reader = consumer, reader

    def leave(self) -> None:
        consumer, self._consumer, self._reader = self._consumer, None, None
        if consumer is not None:
            _close_quietly(consumer)

    def assignment(self) -> set[Partition]:
        if self._consumer is None:
            return set()
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def paused(self) -> set[Partition]:
        if self._consumer is None:
            return set()
        return {(tp.topic, tp.partition) for tp in self._consumer.paused()}

    def pause(self, partitions: Iterable[Partition]) -> None:
        topic_partitions = [TopicPartition(*p) for p in partitions]
        if topic_partitions:
            try:
                self._client().pause(*topic_partitions)
            except KafkaError as exc:  # a partition this member no longer owns, say
                raise _unavailable(exc) from exc

    def resume(self, partitions: Iterable[Partition]) -> None:
        topic_partitions = [TopicPartition(*p) for p in partitions]
        if topic_partitions:
            try:
                self._client().resume(*topic_partitions)
            except KafkaError as exc:  # a partition this member no longer owns, say
                raise _unavailable(exc) from exc

    def seek(self, offsets: Mapping[Partition, int]) -> None:
        consumer = self._client()
        seeked = {TopicPartition(*p): offset for p, offset in offsets.items()}
        try:
            for tp, offset in seeked.items():
                consumer.seek(tp, offset)
        except KafkaError as exc:
            raise _unavailable(exc) from exc
        self._record_reader().seeked(seeked)

    def poll(self, timeout: float, max_messages: int) -> list[Message]:
        reader = self._record_reader()
        try:
            return reader.poll(timeout_ms=max(1, int(timeout * 1000)), max_records=max_messages)
        except KafkaError as exc:  # poll() surfaces few errors; the loop backs off on any
            raise _unavailable(exc) from exc

    def skipped(self) -> list[Message]:
        try:
            return self._record_reader().skipped()
        except KafkaError as exc:
            raise _unavailable(exc) from exc

    def beginning_offsets(
        self, partitions: Collection[Partition], timeout: float
    ) -> dict[Partition, int]:
        try:
            found = self._client().beginning_offsets(
                [TopicPartition(*p) for p in partitions], timeout_ms=int(timeout * 1000)
            )
        except KafkaError as exc:
            raise _unavailable(exc) from exc
        return {(tp.topic, tp.partition): offset for tp, offset in found.items()}

    def end_offsets(
        self, partitions: Collection[Partition], timeout: float
    ) -> dict[Partition, int]:
        try:
            found = self._client().end_offsets(
                [TopicPartition(*p) for p in partitions], timeout_ms=int(timeout * 1000)
            )
        except KafkaError as exc:
            raise _unavailable(exc) from exc
        return {(tp.topic, tp.partition): offset for tp, offset in found.items()}

    def highwater(self, partition: Partition) -> int | None:
        try:
            end: int | None = self._client().highwater(TopicPartition(*partition))
        except KafkaError:  # not assigned (any more): its end is unknown here, as the contract says
            return None
        return end

    def commit(self, offsets: Mapping[Partition, int]) -> bool:
        try:
            self._client().commit(
                {TopicPartition(*p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()},
                timeout_ms=COMMIT_TIMEOUT_MS,
            )
        except REBALANCE_REFUSALS as exc:
            # The group is moving partitions: the next owner starts from the database's
            # offsets anyway. Part of every rollout, so not a Kafka error.
            log.debug("the commit was refused: %s", exc)
            return False
        except KafkaError as exc:
            raise _unavailable(exc) from exc
        return True

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            raise BrokerUnavailableError("Kafka: not in the consumer group (rejoining)")
        return self._consumer

    def _record_reader(self) -> RecordReader:
        if self._reader is None:
            raise BrokerUnavailableError("Kafka: not in the consumer group (rejoining)")
        return self._reader


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    """kafka-python's callbacks, in the pipeline's terms; the reader forgets what was revoked."""

    def __init__(self, reader: RecordReader, listener: RebalanceListener) -> None:
        self._reader = reader
        self._listener = listener

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        self._reader.forget(revoked)
        self._listener.on_revoked({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._listener.on_assigned({(tp.topic, tp.partition) for tp in assigned})


def _unavailable(exc: KafkaError) -> BrokerUnavailableError:
    return BrokerUnavailableError(f"Kafka: {type(exc).__name__}: {exc}")


def _close_quietly(consumer: KafkaConsumer) -> None:
    try:
        consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
    except Exception as exc:  # a wedged client may fail to close, too
        log.warning("closing the Kafka consumer failed: %s", exc)
