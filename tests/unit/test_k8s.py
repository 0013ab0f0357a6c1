"""deploy/k8s/: the manifests validate against the Kubernetes API schemas (kubernetes-validate,
offline) and the Prometheus Operator's resource structure, and agree with the image, the
settings, the alerts and each other. Nothing here needs a cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from worker.process import SHUTDOWN_DEADLINE_SECONDS
from worker.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
PYPROJECT = ROOT / "pyproject.toml"

CORE = (
    "configmap.yaml",
    "secret.example.yaml",
    "secret-api.example.yaml",
    "job-migrate.yaml",
    "deployment.yaml",
    "service.yaml",
    "deployment-api.yaml",
    "service-api.yaml",
)
# The oldest Kubernetes release the manifests are meant for, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
WORKER_LABELS = {"app.kubernetes.io/name": "roi-worker", "app.kubernetes.io/component": "worker"}


def manifest(name: str) -> dict[str, Any]:
    data = yaml.safe_load((K8S / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name} is not one YAML mapping"
    return data


def pod_spec(name: str) -> dict[str, Any]:
    spec = manifest(name)["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def pod_labels(name: str) -> dict[str, str]:
    labels = manifest(name)["spec"]["template"]["metadata"]["labels"]
    assert isinstance(labels, dict)
    return labels


def container(name: str) -> dict[str, Any]:
    (only,) = pod_spec(name)["containers"]
    assert isinstance(only, dict)
    return only


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# ---------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", CORE)
def test_core_manifests_validate_against_the_kubernetes_schema(name: str, version: str) -> None:
    """Strict validation: right types, required fields, and no field Kubernetes does not know."""
    try:
        kubernetes_validate.validate(manifest(name), version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        pytest.fail(f"{name} (Kubernetes {version}): {path}: {error.message}", pytrace=False)


# The parts of the Prometheus Operator's CRDs (monitoring.coreos.com/v1) these manifests use,
# as in its openAPIV3Schema: required fields, types, the duration pattern, and no unknown field
# where the CRD has a fixed set.
DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    r"(([0-9]+)ms)?)$",
}
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": STRINGS,
        "annotations": STRINGS,
    },
    "additionalProperties": False,
}
LABEL_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": STRINGS, "matchExpressions": {"type": "array"}},
    "additionalProperties": False,
}


def resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


POD_MONITOR = resource(
    "PodMonitor",
    {
        "type": "object",
        "required": ["selector", "podMetricsEndpoints"],
        "properties": {
            "jobLabel": {"type": "string"},
            "podTargetLabels": {"type": "array", "items": {"type": "string"}},
            "namespaceSelector": {"type": "object"},
            "selector": LABEL_SELECTOR,
            "podMetricsEndpoints": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "port": {"type": "string", "minLength": 1},
                        "portNumber": {"type": "integer"},
                        "path": {"type": "string", "pattern": "^/"},
                        "scheme": {"enum": ["http", "https"]},
                        "interval": DURATION,
                        "scrapeTimeout": DURATION,
                        "honorLabels": {"type": "boolean"},
                        "relabelings": {"type": "array"},
                        "metricRelabelings": {"type": "array"},
                    },
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    },
)
PROMETHEUS_RULE = resource(
    "PrometheusRule",
    {
        "type": "object",
        "required": ["groups"],
        "properties": {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "rules"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "interval": DURATION,
                        "labels": STRINGS,
                        "limit": {"type": "integer"},
                        "query_offset": DURATION,
                        "partial_response_strategy": {"type": "string"},
                        "rules": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["expr"],
                                "properties": {
                                    "alert": {"type": "string", "minLength": 1},
                                    "record": {"type": "string", "minLength": 1},
                                    "expr": {"type": ["string", "integer"]},
                                    "for": DURATION,
                                    "keep_firing_for": DURATION,
                                    "labels": STRINGS,
                                    "annotations": STRINGS,
                                },
                                "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                "additionalProperties": False,
                            },
                        },
                    },
                    "additionalProperties": False,
                },
            }
        },
        "additionalProperties": False,
    },
)


@pytest.mark.parametrize(
    ("name", "schema"),
    [("podmonitor.yaml", POD_MONITOR), ("prometheusrule.yaml", PROMETHEUS_RULE)],
)
def test_operator_resources_have_the_crd_structure(name: str, schema: dict[str, Any]) -> None:
    """PodMonitor and PrometheusRule carry the fields the Prometheus Operator requires, with its
    types and duration format, and no field it does not know."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{'.'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(manifest(name))
    ]
    assert not errors, f"{name}: {errors}"


def test_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    """kubectl apply -k deploy/k8s creates everything except the Secrets, which hold secrets."""
    listed = manifest("kustomization.yaml")["resources"]
    present = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    examples = {"secret.example.yaml", "secret-api.example.yaml"}
    assert sorted(listed) == sorted(present - examples)
    for name in present:
        assert manifest(name)["metadata"]["labels"]["app.kubernetes.io/name"] == "roi-worker"


# ---------------------------------------------------------------------------- PrometheusRule


def test_prometheusrule_carries_exactly_the_groups_of_alerts_yml() -> None:
    """The PrometheusRule's spec.groups equal alerts.yml's groups, and the file is what
    deploy/k8s/prometheusrule.py generates from them."""
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    assert manifest("prometheusrule.yaml")["spec"]["groups"] == groups
    check = subprocess.run(
        [sys.executable, str(K8S / "prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_podmonitor_scrapes_the_worker_pods_as_the_job_the_alerts_select() -> None:
    """It selects the worker pods (not the migration Job's), on their metrics port, and names
    the job after the pod label the alerts select on (up{job="roi-worker"})."""
    spec = manifest("podmonitor.yaml")["spec"]
    selector = spec["selector"]["matchLabels"]
    assert selects(selector, pod_labels("deployment.yaml"))
    assert not selects(selector, pod_labels("job-migrate.yaml"))
    ports = {port["name"] for port in container("deployment.yaml")["ports"]}
    assert {endpoint["port"] for endpoint in spec["podMetricsEndpoints"]} <= ports
    assert {endpoint["path"] for endpoint in spec["podMetricsEndpoints"]} == {"/metrics"}
    job = pod_labels("deployment.yaml")[spec["jobLabel"]]
    assert set(re.findall(r'\bjob="([^"]+)"', ALERTS.read_text(encoding="utf-8"))) == {job}


def test_service_exposes_the_named_metrics_port_of_the_worker_pods() -> None:
    """The Service selects the worker pods only and forwards to their named metrics port."""
    spec = manifest("service.yaml")["spec"]
    assert selects(spec["selector"], pod_labels("deployment.yaml"))
    assert not selects(spec["selector"], pod_labels("job-migrate.yaml"))
    (port,) = spec["ports"]
    (container_port,) = container("deployment.yaml")["ports"]
    assert port["targetPort"] == container_port["name"] == "metrics"
    assert port["port"] == container_port["containerPort"]


# ---------------------------------------------------------------------------- the worker pods


def test_worker_probes_the_health_endpoints_on_the_metrics_port() -> None:
    """Liveness on /healthz, readiness on /readyz, a startup probe, all on the port the worker
    listens on (ROI_METRICS_PORT, 9108)."""
    worker = container("deployment.yaml")
    (port,) = worker["ports"]
    assert port["containerPort"] == Settings.model_fields["metrics_port"].default == 9108
    config = manifest("configmap.yaml")["data"]
    assert int(config["ROI_METRICS_PORT"]) == port["containerPort"]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert worker["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_termination_grace_period_exceeds_the_shutdown_deadline() -> None:
    """Kubernetes waits longer than the worker's 10 s promise before it kills the process."""
    grace = pod_spec("deployment.yaml")["terminationGracePeriodSeconds"]
    assert grace > SHUTDOWN_DEADLINE_SECONDS + 1
    assert grace >= 20


@pytest.mark.parametrize("name", ["deployment.yaml", "deployment-api.yaml", "job-migrate.yaml"])
def test_pods_run_as_the_image_user_on_a_read_only_root(name: str) -> None:
    """Non-root as the Dockerfile's uid, read-only root filesystem, no privilege escalation or
    capabilities, no service-link variables, and bounded resources."""
    pod = pod_spec(name)
    users = re.findall(r"^USER\s+(\d+):(\d+)", DOCKERFILE.read_text(), re.MULTILINE)
    uid, gid = users[-1]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    box = container(name)["securityContext"]
    assert box["readOnlyRootFilesystem"] is True
    assert box["allowPrivilegeEscalation"] is False
    assert box["capabilities"]["drop"] == ["ALL"]
    resources = container(name)["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_worker_and_migration_run_the_project_image() -> None:
    """`run` and `migrate` of the image docker compose builds, tagged with the project version."""
    version = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    compose_image = yaml.safe_load(COMPOSE.read_text())["services"]["worker"]["image"]
    repository = compose_image.partition(":")[0]
    assert container("deployment.yaml")["args"] == ["run"]
    assert container("job-migrate.yaml")["args"] == ["migrate"]
    for name in ("deployment.yaml", "job-migrate.yaml"):
        assert container(name)["image"] == f"{repository}:{version}"
    assert pod_spec("job-migrate.yaml")["restartPolicy"] == "Never"


def test_configuration_loads_as_settings_with_the_url_from_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ConfigMap holds only known, non-secret ROI_* settings; ROI_DATABASE_URL comes from
    the Secret both pods reference; together they pass the settings' own validation."""
    config = manifest("configmap.yaml")
    secret = manifest("secret.example.yaml")
    secret_fields = {
        name for name, field in Settings.model_fields.items() if "Secret" in str(field.annotation)
    }
    assert "database_url" in secret_fields
    for variable in config["data"]:
        field = variable.removeprefix(ENV_PREFIX).lower()
        assert variable.startswith(ENV_PREFIX), variable
        assert field in Settings.model_fields, f"{variable} is not a setting"
        assert field not in secret_fields, f"{variable} is a secret: put it in a Secret"
    (source,) = container("deployment.yaml")["envFrom"]
    assert source["configMapRef"]["name"] == config["metadata"]["name"]
    api_secret = manifest("secret-api.example.yaml")
    for name in ("deployment.yaml", "deployment-api.yaml", "job-migrate.yaml"):
        env, *api_env = container(name)["env"]
        assert env["name"] == "ROI_DATABASE_URL"
        reference = env["valueFrom"]["secretKeyRef"]
        assert reference["name"] == secret["metadata"]["name"]
        assert reference["key"] in secret["stringData"]
        # Only the API holds its tokens: a write token it needs, read tokens it may have.
        names = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in api_env}
        expected = (
            {"ROI_API_WRITE_TOKENS", "ROI_API_READ_TOKENS"}
            if name == "deployment-api.yaml"
            else set()
        )
        assert set(names) == expected, name
        for variable, reference in names.items():
            assert reference["name"] == api_secret["metadata"]["name"]
            assert reference["key"] == variable
            assert reference.get("optional", False) == (variable == "ROI_API_READ_TOKENS")
    for variable in list(os.environ):
        if variable.startswith(ENV_PREFIX):
            monkeypatch.delenv(variable)
    given = {**config["data"], **secret["stringData"], **api_secret["stringData"]}
    for variable, value in given.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert settings.create_topics is False
    assert settings.write_tokens()


# ---------------------------------------------------------------------------- the API


def test_api_serves_on_its_port_behind_its_own_service() -> None:
    """`roi-worker api` of the project image on ROI_API_PORT (8000), probed on /healthz and
    /readyz, behind a Service selecting the API pods only (not the workers or the Job)."""
    api = container("deployment-api.yaml")
    assert api["args"] == ["api"]
    assert api["image"] == container("deployment.yaml")["image"]
    (port,) = api["ports"]
    assert port["containerPort"] == Settings.model_fields["api_port"].default == 8000
    assert int(manifest("configmap.yaml")["data"]["ROI_API_PORT"]) == port["containerPort"]
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert api["envFrom"] == container("deployment.yaml")["envFrom"]
    spec = manifest("service-api.yaml")["spec"]
    assert selects(spec["selector"], pod_labels("deployment-api.yaml"))
    for other in ("deployment.yaml", "job-migrate.yaml"):
        assert not selects(spec["selector"], pod_labels(other))
    assert not selects(
        manifest("service.yaml")["spec"]["selector"], pod_labels("deployment-api.yaml")
    )
    assert not selects(
        manifest("podmonitor.yaml")["spec"]["selector"]["matchLabels"],
        pod_labels("deployment-api.yaml"),
    )
    (service_port,) = spec["ports"]
    assert service_port["targetPort"] == port["name"]
