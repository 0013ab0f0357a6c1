"""The demo's sample stream: planned from a fixed seed (pure), then published to the topic.

`plan_stream` draws 100 days of executions of six patterns (PROFILES), long enough for the
30, 60 and 90-day snapshots, with outcomes, quality scores and token counts, exact re-sends
(duplicates), one conflicting re-use of an event_id and a few invalid messages spread through
it. `plan_rating_change` is a seventh pattern in two phases, published one after the other, so
that its rating visibly changes (excellent, then failed) during the demo. `publish` sends the
valid runs with the producer helper (worker.producer) and the invalid messages, which the
helper would refuse, with a plain producer. The figures come from the seed, so every run
publishes the same amounts; event_ids are new each run. Money is Decimal.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal

from ..contract import json_codec
from ..contract.event import SCHEMA_VERSION
from ..errors import BrokerUnavailableError, FatalError
from ..kafka.producers import Producer, open_producer
from ..producer import ExecutionEventProducer
from ..settings import KafkaSettings

SEED: Final = 20240614  # the sample's figures; event_ids are fresh uuid4s every run
EVENTS: Final = 3000  # distinct valid events per run (the main stream)
DUPLICATES: Final = 20  # exact re-sends of already published events
CONFLICTS: Final = 1  # re-uses of a published event_id with another actual_cost
HISTORY: Final = timedelta(days=100)  # executed_at spreads over this much of the past
# The span at the end of HISTORY where a profile's `recent_success_rate` applies.
RECENT: Final = timedelta(days=40)
SOURCE: Final = "roi-worker-demo"


@dataclass(frozen=True, slots=True)
class Profile:
    """How one pattern behaves: ranges are (low, high) decimal strings, drawn uniformly in
    steps of the last digit of `low` (so "0.50" draws whole cents). Probabilities are floats:
    they draw outcomes, never amounts."""

    pattern_id: str
    share: int  # relative weight in the stream
    success_rate: float
    execution_seconds: tuple[str, str]  # the automated run
    estimated_seconds: tuple[str, str]  # the same work by hand
    actual_cost: tuple[str, str]  # USD the automated run costs
    estimated_cost: tuple[str, str]  # USD of the work by hand
    errors: tuple[str, ...]
    partial_share: float = 0.0  # of successes: delivered, though not all of it
    error_share: float = 0.0  # of failures: could not run at all (infrastructure)
    quality: tuple[str, str] | None = None  # quality_score, when the pattern reports one
    tokens: tuple[tuple[str, str], tuple[str, str]] | None = None  # baseline, actual
    recent_success_rate: float | None = None  # over the last RECENT of HISTORY, if it drifts


PROFILES: Final = (
    Profile(
        "test-retry-automation",
        30,
        0.98,
        ("20.0", "90.0"),
        ("900.0", "2400.0"),
        ("0.50", "3.00"),
        ("15.00", "40.00"),
        ("retry budget exhausted", "test still failing after 3 attempts"),
        partial_share=0.05,
        error_share=0.3,
        quality=("0.80", "1.00"),
        tokens=(("40000", "90000"), ("6000", "20000")),
    ),
    Profile(
        "dependency-bump",
        18,
        0.93,
        ("120.0", "600.0"),
        ("1800.0", "5400.0"),
        ("1.50", "6.00"),
        ("30.00", "90.00"),
        ("build broke after the upgrade", "lockfile conflict"),
        partial_share=0.1,
        error_share=0.2,
        quality=("0.70", "0.98"),
        tokens=(("60000", "150000"), ("15000", "40000")),
    ),
    Profile(
        "flaky-test-quarantine",
        15,
        0.82,
        ("60.0", "300.0"),
        ("600.0", "1800.0"),
        ("1.00", "4.00"),
        ("8.00", "24.00"),
        ("could not reproduce the flake", "quarantine PR rejected by review"),
        error_share=0.25,
        quality=("0.55", "0.95"),
        recent_success_rate=0.55,  # it drifts: the later snapshots flag it
    ),
    Profile(
        "doc-sync",
        14,
        0.95,
        ("10.0", "60.0"),
        ("120.0", "600.0"),
        ("0.10", "0.60"),
        ("1.00", "4.00"),
        ("docs build failed",),
        error_share=0.5,
        tokens=(("8000", "20000"), ("1000", "5000")),
    ),
    Profile(
        "auto-lint-fix",
        12,
        0.60,
        ("60.0", "300.0"),
        ("60.0", "240.0"),
        ("0.80", "2.40"),
        ("0.50", "2.50"),
        ("fix introduced a type error", "formatter and linter disagree", "patch did not apply"),
        partial_share=0.2,
        error_share=0.1,
        quality=("0.30", "0.80"),
    ),
    Profile(
        "changelog-writer",
        11,
        0.90,
        ("30.0", "180.0"),
        ("900.0", "2700.0"),
        ("0.20", "1.20"),
        ("8.00", "24.00"),
        ("no merged pull requests found",),
        partial_share=0.05,
        quality=("0.75", "0.99"),
        tokens=(("20000", "50000"), ("4000", "12000")),
    ),
)

# The pattern whose rating changes during the demo: RATING_CHANGE_SUCCESSES good runs, then,
# once they are stored, RATING_CHANGE_FAILURES failed ones (a net loss: rated failed).
RATING_CHANGE: Final = Profile(
    "release-notes-bot",
    0,
    1.0,
    ("30.0", "120.0"),
    ("1200.0", "2400.0"),
    ("0.40", "1.20"),
    ("10.00", "30.00"),
    ("release branch not found", "changelog entries missing"),
    error_share=0.25,
    quality=("0.85", "0.99"),
    tokens=(("30000", "60000"), ("5000", "12000")),
)
# Its failed runs burn far more than a good run saves (retries, long timeouts): a net loss.
RATING_CHANGE_BROKEN: Final = replace(
    RATING_CHANGE, execution_seconds=("900.0", "1800.0"), actual_cost=("14.00", "20.00")
)
RATING_CHANGE_SUCCESSES: Final = 24
RATING_CHANGE_FAILURES: Final = 40


@dataclass(frozen=True, slots=True)
class SampleRun:
    """One execution of a pattern: what `ExecutionEventProducer.track` publishes."""

    pattern_id: str
    event_id: uuid.UUID
    executed_at: datetime
    success: bool
    execution_time_seconds: Decimal
    estimated_time_seconds: Decimal
    actual_cost: Decimal
    estimated_cost: Decimal
    workflow_id: str
    error_message: str | None
    outcome: str
    quality_score: Decimal | None = None
    tokens: tuple[int, int] | None = None  # baseline, actual

    def track(self, producer: ExecutionEventProducer) -> None:
        producer.track(
            self.pattern_id,
            success=self.success,
            execution_time_seconds=self.execution_time_seconds,
            estimated_time_seconds=self.estimated_time_seconds,
            actual_cost=self.actual_cost,
            estimated_cost=self.estimated_cost,
            executed_at=self.executed_at,
            event_id=self.event_id,
            workflow_id=self.workflow_id,
            source=SOURCE,
            **self._optional(),
        )

    def _optional(self) -> dict[str, Any]:
        """The optional fields this run carries."""
        fields: dict[str, Any] = {"outcome": self.outcome}
        if self.error_message is not None:
            fields["error_message"] = self.error_message
        if self.quality_score is not None:
            fields["quality_score"] = self.quality_score
        if self.tokens is not None:
            fields["baseline_tokens"], fields["actual_tokens"] = self.tokens
        return fields

    def document(self) -> dict[str, Any]:
        """The event as the contract's JSON object (for the deliberately broken messages)."""
        document: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": str(self.event_id),
            "pattern_id": self.pattern_id,
            "executed_at": self.executed_at.isoformat(),
            "success": self.success,
            "execution_time_seconds": self.execution_time_seconds,
            "estimated_time_seconds": self.estimated_time_seconds,
            "actual_cost": self.actual_cost,
            "estimated_cost": self.estimated_cost,
            "workflow_id": self.workflow_id,
            "source": SOURCE,
        }
        return document | self._optional()


StepKind = Literal["event", "duplicate", "conflict", "invalid"]


@dataclass(frozen=True, slots=True)
class Step:
    """One message to publish: a run through the producer helper, or raw bytes (invalid)."""

    kind: StepKind
    run: SampleRun | None = None
    key: bytes = b""
    value: bytes = b""
    why: str = ""


def plan_stream(
    rng: random.Random,
    now: datetime,
    events: int = EVENTS,
    duplicates: int = DUPLICATES,
    conflicts: int = CONFLICTS,
) -> list[Step]:
    """The messages of one demo run, in publishing order (executed_at ascending).

    Every re-send comes after the event it repeats; the invalid messages are spread through
    the stream.
    """
    runs = sorted((_sample_run(rng, now) for _ in range(events)), key=lambda r: r.executed_at)
    after: dict[int, list[Step]] = {}  # index of a run -> the steps that follow it
    originals = rng.sample(range(events), duplicates + conflicts)
    for position, index in enumerate(originals):
        run = runs[index]
        if position < duplicates:
            step = Step("duplicate", run)
        else:
            step = Step("conflict", replace(run, actual_cost=run.actual_cost + Decimal("1.00")))
        after.setdefault(rng.randint(index, events - 1), []).append(step)
    for step in _invalid_steps(rng, now):
        after.setdefault(rng.randrange(events), []).append(step)
    steps: list[Step] = []
    for index, run in enumerate(runs):
        steps.append(Step("event", run))
        steps.extend(after.get(index, ()))
    return steps


def plan_rating_change(rng: random.Random, now: datetime) -> tuple[list[Step], list[Step]]:
    """RATING_CHANGE's two phases, each published once the one before is stored: its good
    runs, then its failed ones, all within the last hour."""

    def phase(profile: Profile, count: int, success: bool) -> list[Step]:
        runs = (
            _run_of(profile, rng, now, timedelta(minutes=rng.randrange(1, 60)), success)
            for _ in range(count)
        )
        return [Step("event", run) for run in sorted(runs, key=lambda r: r.executed_at)]

    return (
        phase(RATING_CHANGE, RATING_CHANGE_SUCCESSES, True),
        phase(RATING_CHANGE_BROKEN, RATING_CHANGE_FAILURES, False),
    )


def _sample_run(rng: random.Random, now: datetime) -> SampleRun:
    profile = rng.choices(PROFILES, weights=[p.share for p in PROFILES])[0]
    age = timedelta(milliseconds=rng.randrange(60_000, int(HISTORY.total_seconds() * 1000)))
    rate = profile.success_rate
    if profile.recent_success_rate is not None and age < RECENT:
        rate = profile.recent_success_rate
    return _run_of(profile, rng, now, age, rng.random() < rate)


def _run_of(
    profile: Profile, rng: random.Random, now: datetime, age: timedelta, success: bool
) -> SampleRun:
    if success:
        outcome = "partial_success" if rng.random() < profile.partial_share else "success"
    else:
        outcome = "error" if rng.random() < profile.error_share else "failure"
    tokens = None
    if profile.tokens is not None:
        baseline, actual = (_draw(rng, bounds) for bounds in profile.tokens)
        tokens = (int(baseline), int(actual))
    return SampleRun(
        pattern_id=profile.pattern_id,
        event_id=uuid.uuid4(),
        executed_at=now - age,
        success=success,
        execution_time_seconds=_draw(rng, profile.execution_seconds),
        estimated_time_seconds=_draw(rng, profile.estimated_seconds),
        actual_cost=_draw(rng, profile.actual_cost),
        estimated_cost=_draw(rng, profile.estimated_cost),
        workflow_id=f"{profile.pattern_id}-{rng.randrange(16**8):08x}",
        error_message=None if success else rng.choice(profile.errors),
        outcome=outcome,
        quality_score=None if profile.quality is None else _draw(rng, profile.quality),
        tokens=tokens,
    )


def _draw(rng: random.Random, bounds: tuple[str, str]) -> Decimal:
    """A uniformly drawn Decimal between the bounds, in steps of their last decimal place."""
    low, high = Decimal(bounds[0]), Decimal(bounds[1])
    exponents = [low.as_tuple().exponent, high.as_tuple().exponent]
    exponent = min(e for e in exponents if isinstance(e, int))
    units = rng.randint(int(low.scaleb(-exponent)), int(high.scaleb(-exponent)))
    return Decimal(units).scaleb(exponent)


def _invalid_steps(rng: random.Random, now: datetime) -> list[Step]:
    """Messages the worker must dead-letter, each broken in one realistic way."""

    def broken(why: str, change: Mapping[str, Any], drop: str = "") -> Step:
        run = _sample_run(rng, now)
        document = {k: v for k, v in run.document().items() if k != drop} | dict(change)
        value = json_codec.dumps(document).encode()
        return Step("invalid", run, run.pattern_id.encode(), value, why)

    truncated = _sample_run(rng, now)
    naive = (now - timedelta(hours=rng.randint(1, 300))).replace(tzinfo=None, microsecond=0)
    return [
        Step(
            "invalid",
            truncated,
            truncated.pattern_id.encode(),
            json_codec.dumps(truncated.document()).encode()[:57],
            "bad JSON (truncated)",
        ),
        broken("a missing required field (success)", {}, drop="success"),
        broken("a naive timestamp", {"executed_at": naive.isoformat()}),
        broken("a negative cost", {"actual_cost": Decimal("-0.42")}),
        broken("schema_version 2", {"schema_version": 2}),
    ]


@dataclass(frozen=True, slots=True)
class Published:
    """What one run put on the topic, by kind."""

    counts: dict[StepKind, int]
    event_ids: list[uuid.UUID]
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def publish(settings: KafkaSettings, steps: Sequence[Step]) -> Published:
    """Publishes `steps` in order to ROI_TOPIC and waits for the broker's acknowledgement of
    every one. Raises BrokerUnavailableError when Kafka does not take them."""
    started = time.monotonic()
    counts: dict[StepKind, int] = {"event": 0, "duplicate": 0, "conflict": 0, "invalid": 0}
    raw = _raw_producer(settings)
    try:
        with ExecutionEventProducer(settings, client_id="roi-worker-demo") as producer:
            for step in steps:
                if step.kind == "invalid":
                    _send_raw(raw, settings.topic, step)
                elif step.run is not None:
                    step.run.track(producer)
                counts[step.kind] += 1
            producer.flush()
        try:
            raw.flush(timeout=30)
        except (BrokerUnavailableError, FatalError) as exc:
            raise _not_taken(exc) from exc
    finally:
        raw.close(timeout=5)
    event_ids = [s.run.event_id for s in steps if s.kind == "event" and s.run is not None]
    return Published(counts, event_ids, time.monotonic() - started)


def _raw_producer(settings: KafkaSettings) -> Producer:
    """A plain producer for the messages the helper refuses to send (it validates)."""
    return open_producer(settings, "roi-worker-demo-raw", acks="all")


def _send_raw(raw: Producer, topic: str, step: Step) -> None:
    try:
        raw.send(topic, step.value, key=step.key)
    except (BrokerUnavailableError, FatalError) as exc:
        raise _not_taken(exc) from exc


def _not_taken(exc: Exception) -> BrokerUnavailableError:
    return BrokerUnavailableError(f"Kafka did not take the sample stream: {exc}")
