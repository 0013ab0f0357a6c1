"""Settings: one line naming the variable on error, secrets never shown, security passed through."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ConfigurationError
from worker.settings import Settings, load_settings

URL = "postgresql://roi:hunter2@db.example:5432/roi?sslmode=verify-full"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ROI_"):
            monkeypatch.delenv(name)


def error_for(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_database_url_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ROI_DATABASE_URL the error names it."""
    assert error_for(monkeypatch) == "ROI_DATABASE_URL is required but not set"


def test_bad_database_url_is_named_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed URL is rejected; the message never repeats it (it may hold a password)."""
    message = error_for(monkeypatch, ROI_DATABASE_URL="mysql://u:hunter2@h/db")
    assert message.startswith("ROI_DATABASE_URL:")
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://roi:hunter2@[::1/roi",
        "postgresql://roi:hunter2@h/roi?bogus=1",
        "postgresql://roi:hunter2%zz@h/roi",
    ],
)
def test_unparseable_urls_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """A URL libpq cannot parse is a configuration error that never repeats the password."""
    message = error_for(monkeypatch, ROI_DATABASE_URL=url)
    assert message.startswith("ROI_DATABASE_URL: is not a valid PostgreSQL URL")
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ROI_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("ROI_KAFKA_BOOTSTRAP_SERVERS", "broker-without-port"),
        ("ROI_KAFKA_SSL_CAFILE", "/nonexistent/ca.pem"),
        ("ROI_KAFKA_SSL_CHECK_HOSTNAME", "maybe"),
    ],
)
def test_bad_values_are_named_with_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """Each bad setting is reported as VARIABLE: reason (got 'value')."""
    message = error_for(monkeypatch, ROI_DATABASE_URL=URL, **{variable: value})
    assert message.startswith(f"{variable}:")
    assert value in message


def test_sasl_needs_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """SASL without mechanism, user or password names the missing variables."""
    message = error_for(monkeypatch, ROI_DATABASE_URL=URL, ROI_KAFKA_SECURITY_PROTOCOL="SASL_SSL")
    assert "ROI_KAFKA_SASL_MECHANISM" in message
    assert "ROI_KAFKA_SASL_PASSWORD" in message


def test_passwords_are_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    """repr, str and the redacted URL hide every secret."""
    monkeypatch.setenv("ROI_DATABASE_URL", URL)
    monkeypatch.setenv("ROI_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("ROI_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("ROI_KAFKA_SASL_USERNAME", "worker")
    monkeypatch.setenv("ROI_KAFKA_SASL_PASSWORD", "s3cret-kafka")
    settings = load_settings()
    for text in (repr(settings), str(settings), settings.redacted_database_url):
        assert "hunter2" not in text
        assert "s3cret-kafka" not in text
    assert settings.redacted_database_url == (
        "postgresql://roi:***@db.example:5432/roi?sslmode=verify-full"
    )


def test_kafka_security_settings_pass_through(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SASL and TLS settings reach kafka-python under its own option names."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("ROI_DATABASE_URL", URL)
    monkeypatch.setenv("ROI_KAFKA_BOOTSTRAP_SERVERS", "b1:9093, b2:9093")
    monkeypatch.setenv("ROI_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ROI_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("ROI_KAFKA_SASL_USERNAME", "worker")
    monkeypatch.setenv("ROI_KAFKA_SASL_PASSWORD", "s3cret-kafka")
    monkeypatch.setenv("ROI_KAFKA_SSL_CAFILE", str(ca))
    config = load_settings().kafka_config()
    assert config["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-256"
    assert config["sasl_plain_username"] == "worker"
    assert config["sasl_plain_password"] == "s3cret-kafka"
    assert config["ssl_cafile"] == str(ca)
    assert config["ssl_check_hostname"] is True


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings cannot change after start-up."""
    monkeypatch.setenv("ROI_DATABASE_URL", URL)
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka_bootstrap_servers = "elsewhere:9092"  # type: ignore[misc]


def test_every_setting_is_documented_in_the_readme() -> None:
    """Each ROI_* variable the settings read appears in the README's configuration table."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`ROI_{name.upper()}`" in readme, f"ROI_{name.upper()} missing from README"


def test_fetch_sizes_bound_one_fetch_whatever_the_partition_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROI_DATABASE_URL", "postgresql://roi@localhost/roi")
    assert Settings().consumer_fetch_config() == {
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "fetch_max_bytes": 8 * 1024 * 1024,
    }
    monkeypatch.setenv("ROI_KAFKA_MAX_PARTITION_FETCH_BYTES", str(32 * 1024 * 1024))
    assert Settings().consumer_fetch_config()["fetch_max_bytes"] == 32 * 1024 * 1024
