"""deploy/k8s/: the manifests validate against the Kubernetes API schemas (kubernetes-validate and
kubeconform -strict, offline) and the Prometheus Operator's resource structure, pass kube-score,
and agree with the image, the settings, the alerts and each other. Nothing here needs a cluster;
kubeconform and kube-score come from deploy/local/k8s-tools.sh."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from worker.api.server import graceful_shutdown_seconds
from worker.process import SHUTDOWN_DEADLINE_SECONDS
from worker.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).parents[3]
K8S = ROOT / "deploy" / "k8s"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
PYPROJECT = ROOT / "pyproject.toml"
K8S_TOOLS_SH = ROOT / "deploy" / "local" / "k8s-tools.sh"
TOOL_TIMEOUT = 600  # seconds; a first run builds each tool with `go install` (~20 s each)

CORE = (
    "configmap.yaml",
    "secret.example.yaml",
    "secret-api.example.yaml",
    "job-migrate.yaml",
    "deployment.yaml",
    "service.yaml",
    "deployment-api.yaml",
    "service-api.yaml",
    "poddisruptionbudget.yaml",
    "poddisruptionbudget-api.yaml",
    "networkpolicy.yaml",
)
DEPLOYMENTS = ("deployment.yaml", "deployment-api.yaml")
WORKLOADS = (*DEPLOYMENTS, "job-migrate.yaml")
EXAMPLES = ("secret.example.yaml", "secret-api.example.yaml")
# kube-score checks that do not fit, each ignored by a `kube-score/ignore` annotation on the
# workloads that says why:
IGNORED_BY_KUBE_SCORE = {
    # Always would ask the registry at every pod start: an immutable version tag pulled once
    # per node lets pods restart through a registry outage.
    "container-image-pull-policy",
}
# Optional kube-score checks that the manifests pass, so they are on. The other optional ones
# want requests equal to limits (Guaranteed QoS): the pods burst on purpose.
KUBE_SCORE_OPTIONAL = ("container-seccomp-profile", "container-ports-check")
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


def applied() -> list[str]:
    """The files `kubectl apply -k deploy/k8s` applies."""
    resources = manifest("kustomization.yaml")["resources"]
    assert isinstance(resources, list)
    return [str(name) for name in resources]


def configured_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the pods load: the ConfigMap, and the example Secrets for the secrets."""
    for variable in list(os.environ):
        if variable.startswith(ENV_PREFIX):
            monkeypatch.delenv(variable)
    given = {
        **manifest("configmap.yaml")["data"],
        **manifest("secret.example.yaml")["stringData"],
        **manifest("secret-api.example.yaml")["stringData"],
    }
    for variable, value in given.items():
        monkeypatch.setenv(variable, value)
    return load_settings()


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
    [
        ("podmonitor.yaml", POD_MONITOR),
        ("podmonitor-api.yaml", POD_MONITOR),
        ("prometheusrule.yaml", PROMETHEUS_RULE),
    ],
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


def test_podmonitor_api_scrapes_the_api_pods_as_the_job_prometheus_yml_names() -> None:
    """It selects the API pods only, on their HTTP port's /metrics, and sets the job to the
    compose stack's API job (the "API" dashboard selects it)."""
    spec = manifest("podmonitor-api.yaml")["spec"]
    selector = spec["selector"]["matchLabels"]
    assert selects(selector, pod_labels("deployment-api.yaml"))
    for other in ("deployment.yaml", "job-migrate.yaml"):
        assert not selects(selector, pod_labels(other))
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] in {port["name"] for port in container("deployment-api.yaml")["ports"]}
    assert endpoint["path"] == "/metrics"
    (relabeling,) = endpoint["relabelings"]
    assert relabeling["targetLabel"] == "job"
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    api_jobs = [
        job["job_name"]
        for job in prometheus["scrape_configs"]
        if any(t.startswith("api:") for s in job["static_configs"] for t in s["targets"])
    ]
    assert api_jobs == [relabeling["replacement"]]


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


@pytest.mark.parametrize("name", WORKLOADS)
def test_pods_run_as_the_image_user_on_a_read_only_root(name: str) -> None:
    """Non-root as the Dockerfile's uid, read-only root filesystem, no privilege escalation or
    capabilities, no service-link variables, and bounded resources, disk included."""
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
    kinds = {"cpu", "memory", "ephemeral-storage"}
    assert set(resources["requests"]) == set(resources["limits"]) == kinds


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
    settings = configured_settings(monkeypatch)
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


# ---------------------------------------------------------------------------- disruptions


KUBELET_LOG_BYTES = 5 * 10 * 2**20  # the kubelet's default container log rotation: 5 x 10 Mi
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity_bytes(value: str) -> int:
    """A Kubernetes binary quantity (64Mi) in bytes."""
    found = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", value)
    assert found, f"{value} is not a binary quantity"
    return int(found[1]) * UNITS[found[2]]


@pytest.mark.parametrize("name", WORKLOADS)
def test_ephemeral_storage_limit_holds_the_scratch_volumes_and_the_log(name: str) -> None:
    """The pod's disk limit covers its emptyDir size limits plus a fully rotated log, so the
    kubelet evicts it only for a real leak; the request is below the limit."""
    resources = container(name)["resources"]
    request = quantity_bytes(resources["requests"]["ephemeral-storage"])
    limit = quantity_bytes(resources["limits"]["ephemeral-storage"])
    scratch = sum(
        quantity_bytes(volume["emptyDir"]["sizeLimit"])
        for volume in pod_spec(name).get("volumes", [])
        if "emptyDir" in volume
    )
    assert request <= limit
    assert scratch + KUBELET_LOG_BYTES < limit


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_each_deployment_has_one_disruption_budget(name: str) -> None:
    """Exactly one PodDisruptionBudget selects the Deployment's pods (and no other component's):
    a drain evicts one at a time, fewer than the replicas, and may evict unready ones."""
    labels = pod_labels(name)
    budgets = [
        budget
        for budget in (manifest(file) for file in applied())
        if budget["kind"] == "PodDisruptionBudget"
    ]
    (budget,) = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
    spec = budget["spec"]
    assert spec["selector"]["matchLabels"] == manifest(name)["spec"]["selector"]["matchLabels"]
    assert 0 < spec["maxUnavailable"] < manifest(name)["spec"]["replicas"]
    assert "minAvailable" not in spec
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    for other in WORKLOADS:
        if other != name:
            assert not selects(spec["selector"]["matchLabels"], pod_labels(other))


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_replicas_prefer_different_nodes(name: str) -> None:
    """A preferred (not required: one node still runs them all) anti-affinity by hostname
    against the Deployment's own pods."""
    anti = pod_spec(name)["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    affinity = term["podAffinityTerm"]
    assert affinity["topologyKey"] == "kubernetes.io/hostname"
    assert affinity["labelSelector"] == manifest(name)["spec"]["selector"]
    assert 1 <= term["weight"] <= 100


def test_api_stops_after_its_endpoints_are_gone_and_within_the_grace_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A preStop sleep lets the endpoint removal spread before SIGTERM; the grace period, which
    counts from the hook, covers the sleep plus the API's graceful shutdown with room to exit."""
    settings = configured_settings(monkeypatch)
    pre_stop = container("deployment-api.yaml")["lifecycle"]["preStop"]
    assert set(pre_stop) == {"sleep"}
    sleep = pre_stop["sleep"]["seconds"]
    assert 3 <= sleep <= 10
    grace = pod_spec("deployment-api.yaml")["terminationGracePeriodSeconds"]
    assert grace >= sleep + graceful_shutdown_seconds(settings) + 5


# ---------------------------------------------------------------------------- NetworkPolicy


def ports(rules: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(port.get("protocol", "TCP"), port["port"]) for rule in rules for port in rule["ports"]}


def test_network_policy_covers_every_pod_in_and_out() -> None:
    """One NetworkPolicy selects the workers, the API and the migration Job, for ingress and
    egress: a pod it did not select would keep the cluster's allow-all default."""
    policies = [manifest(file) for file in applied() if manifest(file)["kind"] == "NetworkPolicy"]
    (policy,) = policies
    spec = policy["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    for name in WORKLOADS:
        assert selects(spec["podSelector"]["matchLabels"], pod_labels(name)), name


def test_network_policy_lets_in_only_the_metrics_and_api_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ingress: the workers' metrics port and the API's port, the containerPorts and settings."""
    settings = configured_settings(monkeypatch)
    spec = manifest("networkpolicy.yaml")["spec"]
    container_ports = {
        ("TCP", port["containerPort"]) for name in DEPLOYMENTS for port in container(name)["ports"]
    }
    assert ports(spec["ingress"]) == container_ports
    assert container_ports == {("TCP", settings.metrics_port), ("TCP", settings.api_port)}


def test_network_policy_lets_out_dns_kafka_and_postgresql(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Egress: DNS (UDP and TCP), the ports of ROI_KAFKA_BOOTSTRAP_SERVERS and of
    ROI_DATABASE_URL, and nothing else."""
    settings = configured_settings(monkeypatch)
    kafka = {
        ("TCP", int(server.rpartition(":")[2]))
        for server in settings.kafka_bootstrap_servers.split(",")
    }
    database = re.search(r"@[^/:]+:(\d+)/", settings.database_url.get_secret_value())
    assert database
    expected = {("UDP", 53), ("TCP", 53), *kafka, ("TCP", int(database[1]))}
    assert ports(manifest("networkpolicy.yaml")["spec"]["egress"]) == expected


# ---------------------------------------------------------------------------- kubeconform


def k8s_tool(name: str) -> str:
    """The path of a working tool, built by deploy/local/k8s-tools.sh when missing."""
    found = subprocess.run(
        [str(K8S_TOOLS_SH), name], capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
    )
    if found.returncode != 0:
        pytest.fail(f"deploy/local/k8s-tools.sh {name} failed:\n{found.stderr}", pytrace=False)
    return found.stdout.strip()


@pytest.fixture(scope="module")
def kubeconform() -> str:
    return k8s_tool("kubeconform")


@pytest.fixture(scope="module")
def kube_score() -> str:
    return k8s_tool("kube-score")


def full_version(version: str) -> str:
    """1.30 -> 1.30.0: the release whose schemas kubernetes-validate ships for that version."""
    minor = kubernetes_validate.utils.major_minor(version)
    (found,) = {v for v in kubernetes_validate.utils.all_versions() if v.startswith(f"{minor}.")}
    return str(found)


def schema_file(api_version: str, kind: str) -> str:
    """kubeconform's file name for a kind: deployment-apps-v1.json, service-v1.json (the first
    part of the group only, as kubernetes-validate names its files too)."""
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.partition("#/$defs/")[2]
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def local_references(node: Any) -> Any:
    """The schema with every reference into _definitions.json made one into its own $defs."""
    if isinstance(node, dict):
        return {
            key: (
                "#/$defs/" + value.partition("#/$defs/")[2]
                if key == "$ref" and isinstance(value, str)
                else local_references(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [local_references(value) for value in node]
    return node


def standalone_schema(version: str, name: str) -> dict[str, Any]:
    """kubernetes-validate's strict schema of one kind, with the definitions it reaches copied
    in: its own references point at https://kubernetes.io/api/_definitions.json, which
    kubeconform would fetch over the network."""
    source = (
        Path(kubernetes_validate.__file__).parent
        / "kubernetes-json-schema"
        / f"v{version}-local-strict"
    )
    schema = json.loads((source / name).read_text(encoding="utf-8"))
    definitions = json.loads((source / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
    needed: set[str] = set()
    pending = list(references(schema))
    while pending:
        definition = pending.pop()
        if definition not in needed:
            needed.add(definition)
            pending.extend(references(definitions[definition]))
    schema.pop("$id", None)
    standalone = local_references(schema)
    standalone["$defs"] = {key: local_references(definitions[key]) for key in sorted(needed)}
    assert isinstance(standalone, dict)
    return standalone


@pytest.fixture(scope="module")
def schema_location(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A kubeconform -schema-location laid out like its default one (<version>-standalone-strict/
    <kind file>), written from kubernetes-validate's schemas for every kind the manifests use,
    and from this module's CRD structures for the Prometheus Operator's kinds."""
    root = tmp_path_factory.mktemp("kubeconform-schemas")
    documents = [manifest(name) for name in (*applied(), *EXAMPLES)]
    operator = {"PodMonitor": POD_MONITOR, "PrometheusRule": PROMETHEUS_RULE}
    for version in KUBERNETES_VERSIONS:
        directory = root / f"v{full_version(version)}-standalone-strict"
        directory.mkdir()
        for document in documents:
            name = schema_file(document["apiVersion"], document["kind"])
            schema = operator.get(document["kind"]) or standalone_schema(
                full_version(version), name
            )
            (directory / name).write_text(json.dumps(schema), encoding="utf-8")
    return (
        f"{root}/{{{{ .NormalizedKubernetesVersion }}}}-standalone{{{{ .StrictSuffix }}}}"
        "/{{ .ResourceKind }}{{ .KindSuffix }}.json"
    )


def run_kubeconform(
    kubeconform: str, schema_location: str, version: str, files: list[Path]
) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [
            kubeconform,
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            full_version(version),
            "-schema-location",
            schema_location,
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stdout)
    assert isinstance(report, dict), done.stdout + done.stderr
    return done.returncode, report


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubeconform_strict_accepts_every_manifest(
    kubeconform: str, schema_location: str, version: str
) -> None:
    """kubeconform -strict (unknown fields and duplicate keys fail) finds every applied manifest
    and example Secret valid for the oldest and newest Kubernetes targeted; none is skipped."""
    files = [K8S / name for name in (*applied(), *EXAMPLES)]
    returncode, report = run_kubeconform(kubeconform, schema_location, version, files)
    problems = [
        f"{found['filename']}: {found['kind']} {found['name']}: {found.get('msg', '')}"
        for found in report.get("resources") or []
        if found["status"] != "statusValid"
    ]
    assert not problems, "\n".join(problems)
    assert returncode == 0, json.dumps(report)
    assert report["summary"] == {
        "valid": len(files),
        "invalid": 0,
        "errors": 0,
        "skipped": 0,
    }


def test_kubeconform_rejects_an_unknown_field(
    kubeconform: str, schema_location: str, tmp_path: Path
) -> None:
    """The schemas are strict and really used: a misspelt field fails validation."""
    broken = tmp_path / "deployment.yaml"
    broken.write_text(
        (K8S / "deployment.yaml").read_text().replace("revisionHistoryLimit", "revisionHistory")
    )
    returncode, report = run_kubeconform(
        kubeconform, schema_location, KUBERNETES_VERSIONS[0], [broken]
    )
    assert returncode == 1
    assert report["summary"]["invalid"] == 1
    assert "revisionHistory" in report["resources"][0]["msg"]


# ---------------------------------------------------------------------------- kube-score


def run_kube_score(kube_score: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    optional = [arg for check in KUBE_SCORE_OPTIONAL for arg in ("--enable-optional-test", check)]
    return subprocess.run(
        [
            kube_score,
            "score",
            "--output-format",
            "ci",
            "--exit-one-on-warning",
            "--kubernetes-version",
            f"v{KUBERNETES_VERSIONS[0]}",
            *optional,
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kube_score_passes_the_applied_manifests(kube_score: str) -> None:
    """kube-score finds no warning or critical in what kustomize applies, together (so that it
    sees which Service, PodDisruptionBudget and NetworkPolicy select which pods)."""
    done = run_kube_score(kube_score, [K8S / name for name in applied()])
    problems = [
        line for line in done.stdout.splitlines() if line.startswith(("[WARNING]", "[CRITICAL]"))
    ]
    assert not problems, "\n".join(problems)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[OK]" in done.stdout


def test_kube_score_fails_a_deployment_alone(kube_score: str) -> None:
    """The run above can fail: the worker Deployment without its budget and policy does."""
    done = run_kube_score(kube_score, [K8S / "deployment.yaml"])
    assert done.returncode == 1
    assert "[CRITICAL]" in done.stdout


def test_kube_score_ignores_only_the_checks_said_to_be_ignored() -> None:
    """The `kube-score/ignore` annotations name exactly the checks of IGNORED_BY_KUBE_SCORE, on
    every workload, so that ignoring another one is a decision made (and explained) there."""
    for name in applied():
        annotations = manifest(name)["metadata"].get("annotations", {})
        ignored = {
            check.strip()
            for check in annotations.get("kube-score/ignore", "").split(",")
            if check.strip()
        }
        expected = IGNORED_BY_KUBE_SCORE if name in WORKLOADS else set()
        assert ignored == expected, name
