"""The one settings object: every ROI_* environment variable, validated at start-up.

Secrets are SecretStr and never printed. A bad or missing setting becomes a ConfigurationError
whose one-line message names the variable (see `load_settings`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import ConfigurationError

ENV_PREFIX = "ROI_"
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@]+):[^@/]*@")
_QUERY_PASSWORD = re.compile(r"(?<=[?&])(password|sslpassword)=[^&]*", re.IGNORECASE)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Configuration from the environment. Field `x` is read from `ROI_X`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    database_url: SecretStr = Field(
        description="PostgreSQL URL, e.g. postgresql://roi:secret@db:5432/roi?sslmode=verify-full"
    )
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
    def _sasl_complete(self) -> Settings:
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

    @property
    def redacted_database_url(self) -> str:
        """The database URL with its password replaced by ***, safe to print and log."""
        return redact_url(self.database_url.get_secret_value())

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


def redact_url(url: str) -> str:
    """Replaces the passwords of a URL (user-info part and query parameters) with ***."""
    return _QUERY_PASSWORD.sub(r"\1=***", _URL_PASSWORD.sub(r"\1:***@", url))


def load_settings(**overrides: Any) -> Settings:
    """Reads the environment; raises ConfigurationError with one line naming each bad variable."""
    try:
        return Settings(**overrides)
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
    secret = "password" in variable.lower() or variable == f"{ENV_PREFIX}DATABASE_URL"
    if not secret and isinstance(error.get("input"), str):
        return f"{variable}: {message} (got {error['input']!r})"
    return f"{variable}: {message}"
