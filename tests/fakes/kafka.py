"""An in-memory Kafka for the pipeline's loop (arroyo's LocalBroker idea): topics, a group's
committed offsets, one member whose rebalances a test decides, and a dead-letter sink.

`FakeGroupConsumer` implements worker.types.GroupConsumer as strictly as kafka-python does
where the pipeline could go wrong: pausing, resuming or seeking a partition it does not own
fails, and rebalances reach the listener only from inside `poll`, like the real client's.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping, Sequence

from worker.errors import BrokerUnavailableError, RetryableError
from worker.types import DeadLetter, Message, Partition, RebalanceListener

WAIT_SECONDS = 0.005  # the longest an empty poll waits: the loop's tests run in milliseconds


class LocalBroker:
    """Partition logs and committed offsets; thread-safe (the test produces while the loop
    polls)."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self._logs: dict[Partition, list[Message]] = {}
        self._committed: dict[str, dict[Partition, int]] = {}

    def create_topic(self, topic: str, partitions: int) -> None:
        with self.changed:
            for number in range(partitions):
                self._logs.setdefault((topic, number), [])

    def partitions(self, topic: str) -> set[Partition]:
        with self.changed:
            return {p for p in self._logs if p[0] == topic}

    def produce(self, partition: Partition, value: bytes, key: bytes | None = None) -> int:
        """Appends a record; returns its offset."""
        with self.changed:
            log = self._logs[partition]
            offset = len(log)
            log.append(Message(*partition, offset, 1_700_000_000_000, key, value, []))
            self.changed.notify_all()
            return offset

    def read(self, partition: Partition, offset: int, limit: int) -> list[Message]:
        with self.changed:
            return self._logs[partition][offset : offset + limit]

    def end(self, partition: Partition) -> int:
        with self.changed:
            return len(self._logs[partition])

    def commit(self, group: str, offsets: Mapping[Partition, int]) -> None:
        with self.changed:
            self._committed.setdefault(group, {}).update(offsets)

    def committed(self, group: str) -> dict[Partition, int]:
        with self.changed:
            return dict(self._committed.get(group, {}))


class FakeGroupConsumer:
    """The group's one member, unless a test says otherwise: at each join it is assigned every
    partition of the topic (`auto_assign`); `assign` and `revoke` move partitions as a
    rebalance would. Failures are injected by setting `fail_with` (every call that reaches the
    broker raises it) or `refuse_commits` (commits refused, as during a rebalance)."""

    def __init__(
        self, broker: LocalBroker, topic: str, group: str, *, auto_assign: bool = True
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.group = group
        self.auto_assign = auto_assign
        self.fail_with: RetryableError | None = None
        self.refuse_commits = False
        self.joins = 0
        self.polls = 0
        self.seeks: list[dict[Partition, int]] = []
        self._lock = threading.RLock()
        self._listener: RebalanceListener | None = None
        self._assigned: set[Partition] = set()
        self._paused: set[Partition] = set()
        self._positions: dict[Partition, int] = {}
        self._rebalances: list[tuple[str, set[Partition]]] = []  # delivered by the next poll

    # ---------------------------------------------------------------- what a test does

    def assign(self, partitions: Iterable[Partition]) -> None:
        """A rebalance gives this member `partitions` (at its next poll)."""
        with self.broker.changed:
            self._rebalances.append(("assigned", set(partitions)))
            self.broker.changed.notify_all()

    def revoke(self, partitions: Iterable[Partition]) -> None:
        """A rebalance takes `partitions` from this member (at its next poll)."""
        with self.broker.changed:
            self._rebalances.append(("revoked", set(partitions)))
            self.broker.changed.notify_all()

    def position(self, partition: Partition) -> int | None:
        with self._lock:
            return self._positions.get(partition)

    @property
    def joined(self) -> bool:
        return self._listener is not None

    # ---------------------------------------------------------------- GroupConsumer

    def join(self, listener: RebalanceListener, *, first: bool) -> None:
        del first
        self._fail()
        with self._lock:
            self._listener = listener
            self.joins += 1
        if self.auto_assign:
            self.assign(self.broker.partitions(self.topic))

    def leave(self) -> None:
        # As kafka-python's close(): the listener hears of the revocation first.
        with self._lock:
            listener, owned = self._listener, set(self._assigned)
        if listener is not None and owned:
            listener.on_revoked(owned)
        with self._lock:
            self._listener = None
            self._assigned.clear()
            self._paused.clear()
            self._positions.clear()
            self._rebalances.clear()

    def assignment(self) -> set[Partition]:
        with self._lock:
            return set(self._assigned)

    def paused(self) -> set[Partition]:
        with self._lock:
            return set(self._paused)

    def pause(self, partitions: Iterable[Partition]) -> None:
        with self._lock:
            wanted = set(partitions)
            self._check_owned(wanted)
            self._paused |= wanted

    def resume(self, partitions: Iterable[Partition]) -> None:
        with self._lock:
            wanted = set(partitions)
            self._check_owned(wanted)
            self._paused -= wanted

    def seek(self, offsets: Mapping[Partition, int]) -> None:
        with self._lock:
            self._check_owned(set(offsets))
            self._positions.update(offsets)
            self.seeks.append(dict(offsets))

    def poll(self, timeout: float, max_messages: int) -> list[Message]:
        self._fail()
        self.polls += 1
        self._rebalance()
        messages = self._fetch(max_messages)
        if messages:
            return messages
        with self.broker.changed:
            self.broker.changed.wait(min(timeout, WAIT_SECONDS))
        self._rebalance()
        return self._fetch(max_messages)

    def skipped(self) -> list[Message]:
        return []

    def beginning_offsets(
        self, partitions: Collection[Partition], timeout: float
    ) -> dict[Partition, int]:
        del timeout
        self._fail()
        return dict.fromkeys(partitions, 0)

    def end_offsets(
        self, partitions: Collection[Partition], timeout: float
    ) -> dict[Partition, int]:
        del timeout
        self._fail()
        return {p: self.broker.end(p) for p in partitions}

    def highwater(self, partition: Partition) -> int | None:
        return self.broker.end(partition)

    def commit(self, offsets: Mapping[Partition, int]) -> bool:
        self._fail()
        if self.refuse_commits:
            return False
        self.broker.commit(self.group, offsets)
        return True

    # ---------------------------------------------------------------- inside

    def _fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def _check_owned(self, partitions: set[Partition]) -> None:
        if not partitions <= self._assigned:
            raise AssertionError(f"not assigned: {sorted(partitions - self._assigned)}")

    def _rebalance(self) -> None:
        """Delivers the rebalances due, from inside poll as kafka-python does."""
        while True:
            with self.broker.changed:
                if not self._rebalances or self._listener is None:
                    return
                kind, partitions = self._rebalances.pop(0)
            listener = self._listener
            with self._lock:
                if kind == "assigned":
                    partitions -= self._assigned
                    self._assigned |= partitions
                else:
                    partitions &= self._assigned
                    self._assigned -= partitions
                    self._paused -= partitions
                    for p in partitions:
                        self._positions.pop(p, None)
            if kind == "assigned":
                listener.on_assigned(partitions)
            else:
                listener.on_revoked(partitions)

    def _fetch(self, limit: int) -> list[Message]:
        with self._lock:
            readable = sorted(self._assigned - self._paused)
            messages: list[Message] = []
            for p in readable:
                if len(messages) >= limit:
                    break
                start = self._positions.get(p)
                if start is None:  # kafka-python would read from the committed offset
                    start = self.broker.committed(self.group).get(p, 0)
                read = self.broker.read(p, start, limit - len(messages))
                if read:
                    self._positions[p] = read[-1].offset + 1
                    messages += read
            return messages


class FakeDeadLetters:
    """A DeadLetterSink that keeps what it is given; `fail_with` makes it fail like a broker
    that does not acknowledge."""

    def __init__(self) -> None:
        self.published: list[DeadLetter] = []
        self.fail_with: RetryableError | None = None
        self.resets = 0
        self.closed = False

    def connect(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.published.extend(letters)

    def reset(self) -> None:
        self.resets += 1

    def close(self) -> None:
        self.closed = True


def broker_down() -> BrokerUnavailableError:
    return BrokerUnavailableError("Kafka: KafkaConnectionError: the fake broker is down")
