"""Publishing execution events from workflows: validated before they leave the process.

    from roi_worker.producer import track_pattern_execution

    track_pattern_execution(
        "test-retry-automation", success=True,
        execution_time_seconds=12.5, estimated_time_seconds=300,
        actual_cost="0.42", estimated_cost="25.00",
    )

or with seed 000's arguments (its observability hook), which map onto the same event:

    track_pattern_execution(
        "test-retry-automation", 1842, start_time, end_time, 300.0, True,
        error=None, cost_per_second="0.0035",
    )

Events are keyed by pattern_id (one pattern's events stay in order on one partition), sent
with acks=all and an idempotent producer, and each gets a fresh event_id unless one is given.
A bad event raises InvalidEventError at the call, naming each broken field, instead of
becoming a dead letter later; a keyword the contract does not define is a TypeError, never an
unknown field. Connection settings come from ROI_KAFKA_* and ROI_TOPIC; the producer itself is
made by worker.kafka, the package's one door to Kafka.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Final, Self

from .contract.event import SCHEMA_VERSION, ExecutionEvent
from .contract.validate import validate
from .errors import BrokerUnavailableError, FatalError
from .kafka.producers import Delivery, open_producer
from .roi.methodology import EXACT
from .settings import KafkaSettings, load_kafka_settings

SEND_TIMEOUT_SECONDS: Final = 30.0
Number = int | float | Decimal | str
# Seconds -> USD, like seed 000's calculate_cost; called with the exact Decimal seconds.
CostFunction = Callable[[Decimal], Number]
# The contract's optional fields: what `track` takes besides the required ones. Any other
# keyword is a TypeError (a typo such as `eror_message` would otherwise travel as an unknown
# field that nothing reads); free-form data goes in `attributes`.
OPTIONAL_FIELDS: Final = frozenset(
    name for name, field in ExecutionEvent.model_fields.items() if not field.is_required()
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = Decimal("0.000001")


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
        the contract's optional fields (workflow_id, error_message, quality_score, ...,
        OPTIONAL_FIELDS); any other keyword raises TypeError.
        """
        _refuse_unknown("track", optional)
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


def _refuse_unknown(function: str, optional: Mapping[str, Any]) -> None:
    unknown = sorted(set(optional) - OPTIONAL_FIELDS)
    if unknown:
        raise TypeError(
            f"{function}() got an unexpected keyword argument {unknown[0]!r}: the contract's "
            f"optional fields are {', '.join(sorted(OPTIONAL_FIELDS))} (free-form data goes in "
            "attributes)"
        )


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


def track_pattern_execution(  # noqa: PLR0917  (the seed's order of arguments)
    pattern_id: str,
    workflow_id: str | int | None = None,
    start_time: Number | None = None,
    end_time: Number | None = None,
    estimated_time: Number | None = None,
    success: bool | None = None,
    error: str | None = None,
    *,
    execution_time_seconds: Number | None = None,
    estimated_time_seconds: Number | None = None,
    actual_cost: Number | None = None,
    estimated_cost: Number | None = None,
    cost_per_second: Number | None = None,
    calculate_cost: CostFunction | None = None,
    executed_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
    wait: bool = True,
    **optional: Any,
) -> uuid.UUID:
    """Publishes one execution of `pattern_id` and returns its event_id.

    Takes the contract's names (execution_time_seconds, estimated_time_seconds, actual_cost,
    estimated_cost, error_message, ...: see ExecutionEventProducer.track) or seed 000's, in
    the seed's order: workflow_id (an int becomes its decimal string), start_time and end_time
    (epoch seconds, e.g. time.time(): execution_time_seconds = end_time - start_time, computed
    on the decimals the floats print as; executed_at defaults to end_time), estimated_time,
    success, error (-> error_message). Costs are given (actual_cost and estimated_cost) or
    computed from the two durations by `cost_per_second` (USD, exact) or `calculate_cost`
    (Decimal seconds -> USD), never through float arithmetic.

    Raises TypeError for a missing or unknown argument and for a seed name given together with
    its v1 name; ValueError when end_time is before start_time; InvalidEventError for values
    the contract refuses. Waits for the broker's acknowledgement unless `wait=False` (then the
    event is flushed at the latest when the process exits).
    """
    _refuse_unknown("track_pattern_execution", optional)
    if success is None:
        raise TypeError("track_pattern_execution() missing required argument: 'success'")
    if error is not None:
        _not_both("error", "error_message", optional.get("error_message"))
        optional["error_message"] = error
    if isinstance(workflow_id, int) and not isinstance(workflow_id, bool):
        workflow_id = str(workflow_id)  # the seed's workflow_history id; the contract's is text
    figures = execution_figures(
        start_time=start_time,
        end_time=end_time,
        execution_time_seconds=execution_time_seconds,
        estimated_time=estimated_time,
        estimated_time_seconds=estimated_time_seconds,
        actual_cost=actual_cost,
        estimated_cost=estimated_cost,
        cost_per_second=cost_per_second,
        calculate_cost=calculate_cost,
    )
    if executed_at is None and end_time is not None:
        executed_at = _epoch_moment(_decimal_argument("end_time", end_time))
    return default_producer().track(
        pattern_id,
        success=success,
        execution_time_seconds=figures.execution_time_seconds,
        estimated_time_seconds=figures.estimated_time_seconds,
        actual_cost=figures.actual_cost,
        estimated_cost=figures.estimated_cost,
        executed_at=executed_at,
        event_id=event_id,
        wait=wait,
        workflow_id=workflow_id,
        **optional,
    )


@dataclass(frozen=True, slots=True)
class ExecutionFigures:
    """The durations and costs an event requires, as `track` takes them."""

    execution_time_seconds: Number
    estimated_time_seconds: Number
    actual_cost: Number
    estimated_cost: Number


def execution_figures(
    *,
    start_time: Number | None = None,
    end_time: Number | None = None,
    execution_time_seconds: Number | None = None,
    estimated_time: Number | None = None,
    estimated_time_seconds: Number | None = None,
    actual_cost: Number | None = None,
    estimated_cost: Number | None = None,
    cost_per_second: Number | None = None,
    calculate_cost: CostFunction | None = None,
) -> ExecutionFigures:
    """The four required figures of an event from either the seed's arguments or v1's.

    Pure, so its rules are tested without Kafka: exactly one way for each figure (TypeError
    for none or two), floats through their shortest repr, and every difference and product
    in exact Decimal arithmetic (EXACT: nothing is rounded).
    """
    if start_time is not None or end_time is not None:
        _not_both("start_time and end_time", "execution_time_seconds", execution_time_seconds)
        if start_time is None or end_time is None:
            raise TypeError("start_time and end_time go together: pass both, or neither")
        start = _decimal_argument("start_time", start_time)
        end = _decimal_argument("end_time", end_time)
        elapsed = EXACT.subtract(end, start)
        if elapsed < 0:
            raise ValueError(
                f"end_time ({end}) is before start_time ({start}): the execution time would "
                f"be {elapsed} s; it must be >= 0"
            )
        execution_time_seconds = elapsed
    elif execution_time_seconds is None:
        raise TypeError("missing argument: execution_time_seconds (or start_time and end_time)")
    if estimated_time is not None:
        _not_both("estimated_time", "estimated_time_seconds", estimated_time_seconds)
        estimated_time_seconds = estimated_time
    elif estimated_time_seconds is None:
        raise TypeError("missing argument: estimated_time_seconds (or estimated_time)")
    cost = _cost_function(cost_per_second, calculate_cost)
    if cost is None:
        if actual_cost is None or estimated_cost is None:
            raise TypeError(
                "missing argument: actual_cost and estimated_cost (or a cost function: "
                "cost_per_second or calculate_cost)"
            )
        return ExecutionFigures(
            execution_time_seconds, estimated_time_seconds, actual_cost, estimated_cost
        )
    given = "actual_cost" if actual_cost is not None else "estimated_cost"
    _not_both(
        "cost_per_second" if calculate_cost is None else "calculate_cost",
        given,
        actual_cost if actual_cost is not None else estimated_cost,
    )
    return ExecutionFigures(
        execution_time_seconds,
        estimated_time_seconds,
        cost(_decimal_argument("execution_time_seconds", execution_time_seconds)),
        cost(_decimal_argument("estimated_time_seconds", estimated_time_seconds)),
    )


def _cost_function(
    cost_per_second: Number | None, calculate_cost: CostFunction | None
) -> CostFunction | None:
    if cost_per_second is None:
        return calculate_cost
    _not_both("cost_per_second", "calculate_cost", calculate_cost)
    rate = _decimal_argument("cost_per_second", cost_per_second)
    return lambda seconds: EXACT.multiply(rate, seconds)


def _not_both(seed_name: str, v1_name: str, v1_value: object) -> None:
    if v1_value is not None:
        raise TypeError(f"pass {seed_name} or {v1_name}, not both: they give the same figure")


def _decimal_argument(name: str, value: Number) -> Decimal:
    """A float through its shortest repr, an int or a decimal string, exactly; never a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise TypeError(f"{name} must be a number or a decimal string, not {type(value).__name__}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return number


def _epoch_moment(seconds: Decimal) -> datetime:
    """Epoch seconds as an aware UTC datetime, to the microsecond, without a float."""
    microseconds = int(EXACT.quantize(seconds, _MICROSECOND) * 1_000_000)
    return _EPOCH + timedelta(microseconds=microseconds)
