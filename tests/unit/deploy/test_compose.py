"""docker-compose.yml, deploy/Dockerfile and the Prometheus config agree with each other and with
the settings, and every service follows the stack's rules (healthcheck, restart policy, pinned
image, stop timeout). Nothing here needs Docker: the files are parsed and compared, never run."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from worker.api.server import graceful_shutdown_seconds
from worker.process import SHUTDOWN_DEADLINE_SECONDS
from worker.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
SERVICES_SH = ROOT / "deploy" / "local" / "services.sh"
PYPROJECT = ROOT / "pyproject.toml"

SERVICES = ("kafka", "postgres", "migrate", "worker", "api", "prometheus", "grafana")
WORKER_IMAGE_SERVICES = ("migrate", "worker", "api")
ONE_SHOT = ("migrate",)  # runs to completion; every other service runs until stopped
# An exact version: major.minor.patch, or major.minor for PostgreSQL (whose minor releases are
# its patch releases since 10). An optional digest fixes the build as well.
EXACT_TAG = {"postgres": r"\d+\.\d+"}
EXACT_TAG_DEFAULT = r"v?\d+\.\d+\.\d+"
DIGEST = r"sha256:[0-9a-f]{64}"


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    found = load_yaml(COMPOSE)["services"]
    assert isinstance(found, dict)
    return found


def service(name: str) -> dict[str, Any]:
    return services()[name]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment as the strings the container sees (mapping or list form)."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(key): _as_env_string(value) for key, value in env.items()}


# `${NAME:-default}`: what the container sees when the shell does not set NAME.
_DEFAULTED = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")


def _as_env_string(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # Compose passes YAML booleans as true/false
        return str(value).lower()
    return _DEFAULTED.sub(lambda found: found.group(1), str(value))


def published_ports(svc: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port), from `[address:]host:container[/proto]`."""
    result: dict[int, tuple[str, int]] = {}
    for entry in svc.get("ports", []):
        if isinstance(entry, dict):
            host_ip, host, container = (
                entry.get("host_ip", ""),
                entry["published"],
                entry["target"],
            )
        else:
            *front, container = str(entry).split(":")
            host_ip, host = (front[0], front[1]) if len(front) == 2 else ("", front[0])
        result[int(str(container).split("/")[0])] = (str(host_ip), int(host))
    return result


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """Kafka's `NAME://host:port,...` as {NAME: (host, port)}; an empty host is every interface."""
    result: dict[str, tuple[str, int]] = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


def host_port(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host, int(port)


def settings_of(name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a compose service's container would load from its environment."""
    for variable in list(os.environ):
        if variable.startswith(ENV_PREFIX):
            monkeypatch.delenv(variable)
    for variable, value in environment(service(name)).items():
        monkeypatch.setenv(variable, value)
    return load_settings()


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def instruction_args(keyword: str) -> list[str]:
    return [arguments for found, arguments in dockerfile() if found == keyword]


def duration_seconds(value: str) -> float:
    """A Compose duration (1m30s, 10s, 500ms) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", value)
    assert parts, f"not a duration: {value!r}"
    assert "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def long_running() -> list[str]:
    return [name for name in services() if name not in ONE_SHOT]


def services_sh_default(variable: str) -> int:
    match = re.search(rf"^\w+=\$\{{{variable}:-(\d+)\}}$", SERVICES_SH.read_text(), re.MULTILINE)
    assert match, f"{variable} default not found in {SERVICES_SH.name}"
    return int(match[1])


# ---------------------------------------------------------------------------- compose services


def test_the_stack_has_its_services() -> None:
    """Kafka, PostgreSQL, the one-shot migration, the worker, the API, Prometheus, Grafana."""
    missing = set(SERVICES) - set(services())
    assert not missing, f"docker-compose.yml lacks {sorted(missing)}"


def test_every_service_has_a_healthcheck() -> None:
    """Each service that runs until stopped says how to probe it (a command, with an interval,
    timeout and retries); the one-shot migration disables it explicitly."""
    for name, svc in services().items():
        check = svc.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if name in ONE_SHOT:
            assert check == {"disable": True}, name
            continue
        assert not check.get("disable", False), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert len(check["test"]) > 1, name
        for field in ("interval", "timeout"):
            assert duration_seconds(check[field]) > 0, f"{name}: {field}"
        assert check["retries"] >= 3, name


def test_long_running_services_restart_and_the_one_shot_does_not() -> None:
    """A service that exits on its own (the worker on a fatal error: exit 1) is started again;
    the migration runs once, so that a failure stops the worker from starting."""
    for name in long_running():
        assert service(name).get("restart") == "unless-stopped", f"{name}: no restart policy"
    for name in ONE_SHOT:
        assert service(name).get("restart", "no") == "no", name


def test_every_pulled_image_names_an_exact_version() -> None:
    """No `latest`, no floating major (postgres:15): a version that pins a release, with an
    optional sha256 digest. The roi-worker image is built here, not pulled."""
    for name, svc in services().items():
        if "build" in svc:
            continue
        reference, _, digest = svc["image"].partition("@")
        repository, _, tag = reference.rpartition(":")
        assert repository, f"{name}: {svc['image']} has no tag"
        assert "/" not in tag, f"{name}: {svc['image']} has no tag"
        pattern = EXACT_TAG.get(repository, EXACT_TAG_DEFAULT)
        assert re.fullmatch(pattern, tag), f"{name}: {tag!r} is not an exact version"
        if digest:
            assert re.fullmatch(DIGEST, digest), f"{name}: {digest!r} is not a sha256 digest"


def test_stop_timeouts_cover_the_graceful_shutdowns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker kills a container stop_grace_period after SIGTERM: after the worker's shutdown
    deadline and the API's graceful shutdown, not during them."""
    worker = duration_seconds(service("worker")["stop_grace_period"])
    assert worker > SHUTDOWN_DEADLINE_SECONDS
    api = duration_seconds(service("api")["stop_grace_period"])
    assert api > graceful_shutdown_seconds(settings_of("api", monkeypatch)) + 1


def test_every_roi_variable_is_a_setting() -> None:
    """A ROI_* variable the settings do not read would be silently ignored."""
    seen = 0
    for name, svc in services().items():
        for variable in environment(svc):
            if variable.startswith(ENV_PREFIX):
                seen += 1
                field = variable.removeprefix(ENV_PREFIX).lower()
                assert variable == f"{ENV_PREFIX}{field.upper()}"
                assert field in Settings.model_fields, f"{name}: {variable} is not a setting"
    assert seen >= 5


@pytest.mark.parametrize("name", WORKER_IMAGE_SERVICES)
def test_the_environment_loads_as_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each roi-worker container's environment passes the settings' own validation."""
    settings_of(name, monkeypatch)


def test_metrics_port_is_published_exposed_scraped_and_probed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ROI_METRICS_PORT is the port published, exposed, scraped and health-checked."""
    settings = settings_of("worker", monkeypatch)
    port = settings.metrics_port
    assert settings.metrics_host not in ("127.0.0.1", "localhost"), "unreachable from outside"
    assert published_ports(service("worker")) == {port: ("127.0.0.1", port)}
    assert str(port) in exposed_ports()
    assert f"worker:{port}" in scrape_targets()
    probe = " ".join(service("worker")["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/healthz" in probe


def exposed_ports() -> list[str]:
    return [port for arguments in instruction_args("EXPOSE") for port in arguments.split()]


def test_api_port_is_published_exposed_and_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The api service runs `roi-worker api` on ROI_API_PORT, published on 127.0.0.1 only,
    exposed by the image, health-checked on /readyz and scraped there (its /metrics); it starts
    after the migration."""
    api = service("api")
    settings = settings_of("api", monkeypatch)
    port = settings.api_port
    assert api["command"] == ["api"]
    assert settings.api_host not in ("127.0.0.1", "localhost"), "unreachable from outside"
    assert published_ports(api) == {port: ("127.0.0.1", port)}
    assert sorted(exposed_ports()) == sorted(
        {str(port), str(settings_of("worker", monkeypatch).metrics_port)}
    )
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(api["healthcheck"]["test"])
    assert f"api:{port}" in scrape_targets()
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # It would refuse to start without a write token (worker/api/security.py).
    assert settings.write_tokens() == ("local-compose-write-token",)
    assert not settings.api_anonymous_writes


def test_worker_reaches_kafka_by_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each bootstrap server is the kafka service on a listener advertised under that name:
    clients reconnect to the advertised address, so bootstrapping alone is not enough."""
    kafka_env = environment(service("kafka"))
    bound = listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    servers = settings_of("worker", monkeypatch).kafka_bootstrap_servers.split(",")
    for server in servers:
        host, port = host_port(server)
        assert host == "kafka"
        names = [name for name, (_, bound_port) in bound.items() if bound_port == port]
        assert names, f"{server}: kafka declares no listener on port {port}"
        assert advertised.get(names[0]) == ("kafka", port), f"{names[0]} is not advertised there"


def test_host_reaches_kafka_on_the_published_port() -> None:
    """The published port is a listener advertised as 127.0.0.1:<host port>, as services.sh."""
    kafka = service("kafka")
    kafka_env = environment(kafka)
    bound = listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    (container_port, (address, published)), *others = published_ports(kafka).items()
    assert not others
    assert (address, published) == ("127.0.0.1", services_sh_default("ROI_KAFKA_PORT"))
    name = next(name for name, (_, port) in bound.items() if port == container_port)
    assert advertised[name] == ("127.0.0.1", published)


def test_kafka_listeners_are_consistent() -> None:
    """Every listener has a protocol; the controller is bound but never advertised; the
    health check uses a declared listener."""
    kafka = service("kafka")
    kafka_env = environment(kafka)
    bound = listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        pair.split(":") for pair in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(bound) <= set(protocols)
    assert set(advertised) <= set(bound)
    controller = kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in bound
    assert controller not in advertised
    assert kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    _, voter = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert host_port(voter)[1] == bound[controller][1]
    probe = " ".join(kafka["healthcheck"]["test"])
    match = re.search(r"--bootstrap-server\s+(\S+)", probe)
    assert match
    assert host_port(match[1])[1] in {port for _, port in bound.values()}


@pytest.mark.parametrize("name", WORKER_IMAGE_SERVICES)
def test_database_url_names_the_postgres_service(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ROI_DATABASE_URL is the postgres service, with the user, password and database it sets."""
    postgres = service("postgres")
    postgres_env = environment(postgres)
    url = settings_of(name, monkeypatch).database_url.get_secret_value()
    params = conninfo_to_dict(url)
    assert params["host"] == "postgres"
    assert int(str(params.get("port", 5432))) in published_ports(postgres)
    assert params["user"] == postgres_env["POSTGRES_USER"]
    assert params["password"] == postgres_env["POSTGRES_PASSWORD"]
    assert params["dbname"] == postgres_env["POSTGRES_DB"]


def test_host_ports_are_those_of_services_sh() -> None:
    """The host-side URLs of `make services` work unchanged against the compose services."""
    assert published_ports(service("postgres")) == {
        5432: ("127.0.0.1", services_sh_default("ROI_PG_PORT"))
    }
    postgres_env = environment(service("postgres"))
    for setting in ("USER", "PASSWORD", "DATABASE"):
        default = re.search(rf"\$\{{ROI_PG_{setting}:-(\w+)\}}", SERVICES_SH.read_text())
        assert default
        key = "POSTGRES_DB" if setting == "DATABASE" else f"POSTGRES_{setting}"
        assert postgres_env[key] == default[1]


def test_migrate_runs_once_and_the_worker_waits_for_it() -> None:
    """migrate starts on a healthy database and exits; the worker starts only after it succeeded
    and once Kafka is healthy."""
    migrate, worker = service("migrate"), service("worker")
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["command"] == ["run"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", WORKER_IMAGE_SERVICES)
def test_worker_image_is_built_from_deploy_dockerfile(name: str) -> None:
    """Both roi-worker services build the same image from the repository root."""
    svc = service(name)
    assert (ROOT / svc["build"]["context"]).resolve() == ROOT.resolve()
    assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert svc["image"] == service("worker")["image"]


def test_named_volumes_are_declared_and_mounted_files_exist() -> None:
    compose = load_yaml(COMPOSE)
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


# ---------------------------------------------------------------------------- Prometheus


def scrape_targets() -> list[str]:
    config = load_yaml(PROMETHEUS)
    return [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]


def test_prometheus_scrapes_the_worker_every_15_seconds() -> None:
    config = load_yaml(PROMETHEUS)
    jobs = [
        job
        for job in config["scrape_configs"]
        if any(t.startswith("worker:") for s in job["static_configs"] for t in s["targets"])
    ]
    assert len(jobs) == 1
    (job,) = jobs
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "15s"


def test_prometheus_service_uses_the_config_and_a_pinned_image() -> None:
    prometheus = service("prometheus")
    image, _, tag = prometheus["image"].partition(":")
    assert image == "prom/prometheus"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"pin a version, not {tag!r}"
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in prometheus["volumes"]
    )
    assert published_ports(prometheus) == {9090: ("127.0.0.1", 9090)}


# ---------------------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_the_wheel_from_pyproject() -> None:
    """Everything hatchling needs for the wheel is copied in, and the wheel is what gets
    installed: the package, the force-included migrations, the readme and pyproject.toml."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"], *wheel["packages"]}
    needed |= set(wheel.get("force-include", {}))
    copied = {
        source.removeprefix("./").rstrip("/")
        for arguments in instruction_args("COPY")
        if "--from=" not in arguments
        for source in arguments.split()[:-1]
        if not source.startswith("--")
    }
    assert needed <= copied, f"deploy/Dockerfile does not copy {sorted(needed - copied)}"
    assert any("pip wheel" in run for run in instruction_args("RUN"))


def test_dockerfile_is_multi_stage_on_one_slim_python() -> None:
    """Build and runtime stages share the base image (the virtualenv is copied between them),
    a slim Python no older than requires-python."""
    defaults = dict(
        arguments.split("=", 1) for arguments in instruction_args("ARG") if "=" in arguments
    )
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda match: defaults[match[1]], arguments.split()[0])
        for arguments in instruction_args("FROM")
    ]
    assert len(bases) >= 2
    assert len(set(bases)) == 1
    version = re.fullmatch(r"python:(\d+)\.(\d+)-slim", bases[-1])
    assert version, f"{bases[-1]} is not a python:X.Y-slim image"
    requires = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["requires-python"]
    minimum = tuple(int(part) for part in requires.removeprefix(">=").split("."))
    assert (int(version[1]), int(version[2])) >= minimum


def test_dockerfile_runs_roi_worker_as_non_root() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    (entrypoint,) = instruction_args("ENTRYPOINT")
    (command,) = instruction_args("CMD")
    assert json.loads(entrypoint) == ["roi-worker"]
    assert "roi-worker" in project["project"]["scripts"]
    assert json.loads(command) == ["run"]
    users = instruction_args("USER")
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerignore_keeps_out_local_state_but_not_the_sources() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".local", ".cache"} <= patterns
    assert not patterns & {"pyproject.toml", "README.md", "worker", "migrations", "*.md"}
