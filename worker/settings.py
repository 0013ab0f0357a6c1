"""The one settings object: every ROI_* environment variable, validated at start-up.

Secrets are SecretStr and never printed: each is registered with worker.redaction as soon as it
is read, even from a setting that turns out invalid, so that no output shows it in any form. A
bad or missing setting becomes a ConfigurationError whose one-line message names the variable
(see `load_settings`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError
from .redaction import redact, register_secret
from .roi.methodology import DEFAULT_MIN_EXECUTIONS

ENV_PREFIX = "ROI_"
DEFAULT_TOPIC = "adw.pattern-executions"
DEFAULT_RATINGS_TOPIC = "adw.pattern-ratings"
TOPIC_NAME = r"^[A-Za-z0-9._-]{1,249}$"  # Kafka's own rule for topic names
GROUP_ID_MAX_LENGTH = 249  # Kafka's limit too
# One fetch response, all partitions together. kafka-python holds a partition's decoded
# response until the loop has taken its records, and fetches the other partitions meanwhile:
# with 1 MB messages 16 MiB let its I/O thread hold over 100 MB (memray, docs/benchmarks.md).
FETCH_MAX_BYTES = 8 * 1024 * 1024
# Variables whose values are secret; and the user-info password of a URL libpq cannot parse.
_SECRET_VARIABLE = re.compile(r"PASSWORD|TOKENS|DATABASE_URL")
_URL_PASSWORD = re.compile(r"://[^\s:/?#@]*:([^\s]*)@")
# A bearer token: long enough not to be guessed, and no character that would need quoting in
# an Authorization header or splits the comma-separated list.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{16,512}")

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a store that failed for a retryable reason (worker.errors.RetryableError) is tried
    again: after `first` seconds, doubling up to `maximum` seconds, for at most `attempts` tries
    in all (None: until the worker stops). Chosen in code, not by an environment variable: the
    presets below are what `run` and `replay` need, and nothing else uses one.
    """

    first: float  # seconds
    maximum: float  # seconds
    attempts: int | None = None

    def delay(self, failures: int) -> float | None:
        """The pause after `failures` failures in a row (1 or more); None once the attempts are
        used up, and the failure is to be raised."""
        if self.attempts is not None and failures >= self.attempts:
            return None
        # The exponent is capped: an outage of hours must not overflow the float.
        return min(self.first * 2.0 ** min(failures - 1, 64), self.maximum)


# `roi-worker run`: short, so that storing resumes within seconds of the database or broker
# coming back; never gives up, as the worker keeps its partitions through an outage.
LIVE = RetryPolicy(first=0.5, maximum=5.0)
# `roi-worker replay`: 1, 2, 4, 8 and 16 s between six tries, about half a minute, then the
# replay fails with its report and a resume hint (nothing holds partitions meanwhile).
BACKFILL = RetryPolicy(first=1.0, maximum=16.0, attempts=6)


class KafkaSettings(BaseSettings):
    """How to reach the broker and which topic carries the events: all a producer needs.

    Field `x` is read from `ROI_X`.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    topic: str = Field(default=DEFAULT_TOPIC, pattern=TOPIC_NAME)
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list."
    )
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        servers = [server.strip() for server in value.split(",")]
        for server in servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @model_validator(mode="after")
    def _sasl_complete(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_"):
            missing = [
                f"{ENV_PREFIX}{name.upper()}"
                for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} required with {self.kafka_security_protocol}"
                )
        return self

    @model_validator(mode="after")
    def _register_secrets(self) -> Self:
        register_secrets(dict(self))
        return self

    def kafka_config(self) -> dict[str, Any]:
        """Connection and security settings for kafka-python's producer, consumer and admin."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers.split(","),
            "security_protocol": self.kafka_security_protocol,
            "client_id": "roi-worker",
        }
        if self.kafka_sasl_mechanism:
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                config["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            config["ssl_check_hostname"] = self.kafka_ssl_check_hostname
            for name in ("cafile", "certfile", "keyfile"):
                path = getattr(self, f"kafka_ssl_{name}")
                if path is not None:
                    config[f"ssl_{name}"] = str(path)
            if self.kafka_ssl_password is not None:
                config["ssl_password"] = self.kafka_ssl_password.get_secret_value()
        return config

    def consumer_config(self) -> dict[str, Any]:
        """kafka_config() for a consumer (worker.kafka.client.new_consumer makes every one): it
        reads committed events only. kafka-python's default, read_uncommitted, hands over the
        events of aborted transactions too, and they would be stored."""
        return {**self.kafka_config(), "isolation_level": "read_committed"}


class Settings(KafkaSettings):
    """Everything the worker and the operator commands read. Field `x` is read from `ROI_X`."""

    database_url: SecretStr = Field(
        description="PostgreSQL URL, e.g. postgresql://roi:secret@db:5432/roi?sslmode=verify-full"
    )
    group_id: str = Field(default="roi-worker", min_length=1, max_length=GROUP_ID_MAX_LENGTH)
    kafka_session_timeout_ms: int = Field(default=45000, ge=6000, le=300000)
    # kafka-python fetches a partition again only once its buffered records are consumed, and the
    # loop waits for that round trip: 4 MiB (~12,000 events) waits a quarter as often as its
    # default 1 MiB, for a few per cent more throughput and ~30 MB (docs/benchmarks.md).
    kafka_max_partition_fetch_bytes: int = Field(default=4 * 1024 * 1024, ge=65536, le=64 << 20)

    def consumer_fetch_config(self) -> dict[str, int]:
        """Fetch sizes for the consumers of `run` and `replay`. One fetch response is capped at
        FETCH_MAX_BYTES whatever the partition count, so that memory does not grow with the
        partitions a worker owns."""
        per_partition = self.kafka_max_partition_fetch_bytes
        return {
            "max_partition_fetch_bytes": per_partition,
            "fetch_max_bytes": max(FETCH_MAX_BYTES, per_partition),
        }

    dlq_topic: str | None = Field(default=None, pattern=TOPIC_NAME)
    # Where one replica publishes the pattern-rating-changed events (consume/ratings_publisher.py).
    ratings_topic: str = Field(default=DEFAULT_RATINGS_TOPIC, pattern=TOPIC_NAME)
    create_topics: bool = False
    batch_max_messages: int = Field(default=5000, ge=1, le=100_000)
    # The latency at a steady rate is about this plus a write (docs/benchmarks.md): 0.05 s keeps
    # the p99 of produce-to-summary under 250 ms at 2,000 events/s, where 0.1 s does not. A
    # worker catching up fills its batches by count long before, so throughput is the same.
    batch_max_seconds: float = Field(default=0.05, gt=0, le=60)
    # A batch is held up to three times at once (being polled, prepared, stored), raw and
    # parsed: 8 MiB, with FETCH_MAX_BYTES, keeps a worker of 1 MB messages under 250 MB
    # (tests/integration/test_large_messages.py; the benchmark's "1 MB messages" run). Events
    # of a few hundred bytes fill ROI_BATCH_MAX_MESSAGES long before.
    batch_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024 * 1024, le=1024 * 1024 * 1024)
    # Longer than any healthy pause (a rebalance, a database failover) and shorter than the
    # RoiWorkerStalled alert's 5 minutes, so the worker acts before anyone is paged.
    stall_seconds: float = Field(default=120.0, ge=5, le=3600)
    dlq_max_ratio: float = Field(default=0.5, ge=0, le=1)
    # Scheduled retention (worker/ops/retention_schedule.py): off unless set.
    retention_days: int | None = Field(default=None, ge=1, le=36_500)
    retention_check_seconds: float = Field(default=3600.0, ge=1, le=86_400)
    metrics_host: str = "0.0.0.0"  # noqa: S104  (a pod's probes and Prometheus come from outside)
    metrics_port: int = Field(default=9108, ge=0, lt=65536)
    metrics_max_patterns: int = Field(default=500, ge=0)
    min_executions: int = Field(default=DEFAULT_MIN_EXECUTIONS, ge=1)
    api_host: str = "0.0.0.0"  # noqa: S104  (dashboards and scripts come from outside the pod)
    api_port: int = Field(default=8000, ge=1, lt=65536)
    api_db_pool_size: int = Field(default=4, ge=1, le=100)
    api_publish_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    api_cache_seconds: float = Field(default=2.0, ge=0, le=300)
    # Who may use the API (docs/api.md "Access"): writes need a bearer token unless anonymous
    # writes are allowed on purpose; reads are open unless read tokens are set.
    api_writes: bool = True
    api_write_tokens: SecretStr | None = None
    api_read_tokens: SecretStr | None = None
    api_anonymous_writes: bool = False
    # What a client may hold: a connection that has not sent its request headers within the
    # header timeout, or its body within the body timeout, is closed (slow clients must not
    # pin connections); beyond api_max_connections, requests get 503.
    api_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    api_body_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    api_max_connections: int = Field(default=256, ge=1, le=100_000)
    # How often the dashboard's live stream (GET /api/roi-tracking/live) looks for new figures.
    dashboard_refresh_seconds: float = Field(default=5.0, ge=1, le=300)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            # libpq's message quotes the URL, password included, so it is not passed on.
            raise ValueError(
                "is not a valid PostgreSQL URL (check the percent-encoding of special characters "
                "and the query parameters)"
            ) from None
        return value

    @field_validator("api_write_tokens", "api_read_tokens")
    @classmethod
    def _bearer_tokens(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():  # set but empty: none
            return None
        tokens = [token.strip() for token in value.get_secret_value().split(",")]
        if not all(_TOKEN.fullmatch(token) for token in tokens):
            raise ValueError(
                "must be a comma-separated list of tokens of 16 to 512 characters from "
                "A-Z a-z 0-9 . _ ~ + / = - (e.g. `openssl rand -hex 32`)"
            )
        return SecretStr(",".join(tokens))

    def write_tokens(self) -> tuple[str, ...]:
        """The bearer tokens that may publish events (and read)."""
        return _tokens(self.api_write_tokens)

    def read_tokens(self) -> tuple[str, ...]:
        """The bearer tokens that may only read; none means reads are open."""
        return _tokens(self.api_read_tokens)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def dead_letter_topic(self) -> str:
        """ROI_DLQ_TOPIC, or `<topic>.dlq` when it is not set."""
        return self.dlq_topic or f"{self.topic}.dlq"

    @property
    def redacted_database_url(self) -> str:
        """The database URL with its password replaced by ***, safe to print and log."""
        return redact(self.database_url.get_secret_value())


_S = TypeVar("_S", bound=KafkaSettings)


def _tokens(value: SecretStr | None) -> tuple[str, ...]:
    return tuple(value.get_secret_value().split(",")) if value is not None else ()


def register_secrets(variables: Mapping[str, object]) -> None:
    """Registers with worker.redaction every secret among these ROI_* variables (or settings
    fields): passwords, tokens, and the password inside a database URL."""
    for name, given in variables.items():
        value = given.get_secret_value() if isinstance(given, SecretStr) else given
        if not isinstance(value, str) or not _SECRET_VARIABLE.search(name.upper()):
            continue
        if "URL" not in name.upper():
            register_secret(value)
            for token in value.split(","):
                register_secret(token.strip())
            continue
        # What libpq reads as the password, and what the URL's user-info holds: they differ
        # when an "@" in the password is not percent-encoded (libpq splits at the first one and
        # takes the rest for the host, which its errors then quote), so each piece counts too.
        found = _URL_PASSWORD.search(value)
        written = found.group(1) if found else None
        try:
            parsed = conninfo_to_dict(value).get("password")
        except psycopg.ProgrammingError:
            parsed = None
        for password in (parsed, written):
            if isinstance(password, str):
                register_secret(password)
                for piece in password.split("@"):
                    register_secret(piece)


def load_settings(**overrides: Any) -> Settings:
    """Reads the environment; raises ConfigurationError with one line naming each bad variable."""
    return _load(Settings, overrides)


def load_kafka_settings(**overrides: Any) -> KafkaSettings:
    """Like load_settings, for code that only talks to Kafka (producers need no database)."""
    return _load(KafkaSettings, overrides)


def _load(kind: type[_S], overrides: dict[str, Any]) -> _S:
    # Before validation: a secret in a setting that turns out invalid must stay hidden too.
    register_secrets({k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)})
    register_secrets(overrides)
    try:
        return kind(**overrides)
    except ValidationError as exc:
        raise ConfigurationError("; ".join(_describe(error) for error in exc.errors())) from None


def _describe(error: Any) -> str:
    loc = error.get("loc") or ()
    if not loc:  # a rule across settings; its message names the variables
        return str(error["msg"]).removeprefix("Value error, ")
    variable = f"{ENV_PREFIX}{str(loc[0]).upper()}"
    if error["type"] == "missing":
        return f"{variable} is required but not set"
    message = str(error["msg"]).removeprefix("Value error, ")
    secret = _SECRET_VARIABLE.search(variable) is not None
    if not secret and isinstance(error.get("input"), str):
        return f"{variable}: {message} (got {error['input']!r})"
    return f"{variable}: {message}"
