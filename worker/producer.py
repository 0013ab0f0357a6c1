"""Publishing execution events from workflows: validated before they leave the process.

    from roi_worker.producer import track_pattern_execution

    track_pattern_execution(
        "test-retry-automation", success=True,
        execution_time_seconds=12.5, estimated_time_seconds=300,
        actual_cost="0.42", estimated_cost="25.00",
    )

Events are keyed by pattern_id (one pattern's events stay in order on one partition), sent
with acks=all and an idempotent producer, and each gets a fresh event_id unless one is given.
A bad event raises InvalidEventError at the call, naming each broken field, instead of
becoming a dead letter later. Connection settings come from ROI_KAFKA_* and ROI_TOPIC; the
producer itself is made by worker.kafka, the package's one door to Kafka.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Final, Self

from .contract.event import SCHEMA_VERSION, ExecutionEvent
from .contract.validate import validate
from .errors import BrokerUnavailableError, FatalError
from .kafka.producers import Delivery, open_producer
from .settings import KafkaSettings, load_kafka_settings

SEND_TIMEOUT_SECONDS: Final = 30.0
Number = int | float | Decimal | str


class ExecutionEventProducer:
    """A reusable, thread-safe publisher of execution events (one per process is plenty)."""

    def __init__(self, settings: KafkaSettings | None = None, **kafka_options: Any) -> None:
        """`kafka_options`: kafka-python producer options over ours (client_id included).
        Raises BrokerUnavailableError when Kafka cannot be reached."""
        self._settings = settings or load_kafka_settings()
        options: dict[str, Any] = {
            "client_id": "roi-worker-producer",
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
            **kafka_options,
        }
        self._failures: list[str] = []  # sends the broker never acknowledged, since the last flush
        self._producer = open_producer(self._settings, **options)

    @property
    def topic(self) -> str:
        return self._settings.topic

    def publish(self, event: ExecutionEvent | Mapping[str, Any], *, wait: bool = False) -> Delivery:
        """Validates and sends one event; returns its Delivery (`wait(timeout)` blocks for the
        broker's acknowledgement).

        With `wait`, blocks until the broker acknowledged it (BrokerUnavailableError if not).
        """
        if not isinstance(event, ExecutionEvent):
            event = validate(event)
        try:
            delivery = self._producer.send(
                self.topic, event.to_json(), key=event.pattern_id.encode()
            )
            if wait:
                delivery.wait(SEND_TIMEOUT_SECONDS)
            else:  # reported by the next flush() or close()
                event_id = event.event_id
                delivery.on_failure(lambda error: self._failures.append(f"{event_id} ({error})"))
        except (BrokerUnavailableError, FatalError) as exc:
            raise BrokerUnavailableError(
                f"Kafka did not take event {event.event_id}: {exc}"
            ) from exc
        return delivery

    def publish_all(
        self, events: Sequence[ExecutionEvent], timeout: float = SEND_TIMEOUT_SECONDS
    ) -> None:
        """Sends validated events and blocks until the broker acknowledged every one of them.

        Raises BrokerUnavailableError when any is not acknowledged within `timeout` seconds in
        all; some of the others may have been stored, so a caller re-sends all of them (the
        worker stores each event_id once). Unlike `flush`, it reports only these events' fate,
        so concurrent callers sharing the producer do not see each other's failures.
        """
        deadline = time.monotonic() + timeout
        deliveries: list[Delivery] = []
        for event in events:
            # send() itself blocks while the send buffer is full (up to max_block_ms):
            # the deadline bounds the whole call, not just the acknowledgements.
            if time.monotonic() > deadline:
                raise BrokerUnavailableError(
                    f"Kafka took only {len(deliveries)} of the {len(events)} event(s) "
                    f"within {timeout:g} s (its send buffer is full)"
                )
            try:
                deliveries.append(
                    self._producer.send(self.topic, event.to_json(), key=event.pattern_id.encode())
                )
            except (BrokerUnavailableError, FatalError) as exc:
                raise self._unacknowledged(events, exc) from exc
        for delivery in deliveries:
            try:
                delivery.wait(max(0.0, deadline - time.monotonic()))
            except (BrokerUnavailableError, FatalError) as exc:
                raise self._unacknowledged(events, exc) from exc

    @staticmethod
    def _unacknowledged(
        events: Sequence[ExecutionEvent], exc: BrokerUnavailableError | FatalError
    ) -> BrokerUnavailableError:
        return BrokerUnavailableError(
            f"Kafka did not acknowledge the {len(events)} event(s) in time: {exc}"
        )

    def track(
        self,
        pattern_id: str,
        *,
        success: bool,
        execution_time_seconds: Number,
        estimated_time_seconds: Number,
        actual_cost: Number,
        estimated_cost: Number,
        executed_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
        wait: bool = False,
        **optional: Any,
    ) -> uuid.UUID:
        """Builds, validates and sends an event for one run; returns its event_id.

        Amounts may be Decimal, int, decimal strings or floats (a float goes through its
        shortest repr, e.g. 0.1 -> "0.1", never through binary arithmetic). `optional` takes
        the contract's optional fields (workflow_id, error_message, quality_score, ...).
        """
        event_id = event_id or uuid.uuid4()
        document: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": str(event_id),
            "pattern_id": pattern_id,
            "executed_at": (executed_at or datetime.now(UTC)).isoformat(),
            "success": success,
            "execution_time_seconds": _exact(execution_time_seconds, money=False),
            "estimated_time_seconds": _exact(estimated_time_seconds, money=False),
            "actual_cost": _exact(actual_cost, money=True),
            "estimated_cost": _exact(estimated_cost, money=True),
        }
        for name, value in optional.items():
            if value is not None:
                document[name] = _exact(value, money=False) if isinstance(value, float) else value
        self.publish(document, wait=wait)
        return event_id

    def flush(self, timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        """Blocks until every sent event is acknowledged; raises BrokerUnavailableError naming
        the events the broker did not take since the last flush (re-send those)."""
        try:
            self._producer.flush(timeout=timeout)
        except (BrokerUnavailableError, FatalError) as exc:
            raise BrokerUnavailableError(f"Kafka did not acknowledge every event: {exc}") from exc
        failures, self._failures = self._failures, []
        if failures:
            raise BrokerUnavailableError(
                f"Kafka did not take {len(failures)} event(s), e.g. {failures[0]}"
            )

    def close(self, timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        """Flushes (raising like flush) and closes."""
        try:
            self.flush(timeout)
        finally:
            self._producer.close(timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
            return
        with contextlib.suppress(BrokerUnavailableError):  # do not hide the error in flight
            self.close()


def _exact(value: Any, *, money: bool) -> Any:
    """Floats become Decimals through their shortest repr; strings stay for money only."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and not money:  # the contract wants numbers for durations
        try:
            return Decimal(value)
        except InvalidOperation:
            return value  # validation names the field
    return value


_default: ExecutionEventProducer | None = None
_default_lock = threading.Lock()


def default_producer() -> ExecutionEventProducer:
    """The process-wide producer track_pattern_execution uses, created on first use and
    flushed when the interpreter exits."""
    global _default  # noqa: PLW0603  (one lazily created producer per process)
    with _default_lock:
        if _default is None:
            _default = ExecutionEventProducer()
            atexit.register(_default.close)
        return _default


def track_pattern_execution(
    pattern_id: str,
    *,
    success: bool,
    execution_time_seconds: Number,
    estimated_time_seconds: Number,
    actual_cost: Number,
    estimated_cost: Number,
    executed_at: datetime | None = None,
    wait: bool = True,
    **optional: Any,
) -> uuid.UUID:
    """Publishes one execution of `pattern_id` and returns its event_id.

    Waits for the broker's acknowledgement unless `wait=False` (then the event is flushed at
    the latest when the process exits). See ExecutionEventProducer.track for the arguments.
    """
    return default_producer().track(
        pattern_id,
        success=success,
        execution_time_seconds=execution_time_seconds,
        estimated_time_seconds=estimated_time_seconds,
        actual_cost=actual_cost,
        estimated_cost=estimated_cost,
        executed_at=executed_at,
        wait=wait,
        **optional,
    )
