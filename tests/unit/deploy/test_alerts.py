"""deploy/prometheus/alerts.yml: promtool's checks and unit tests pass, every alert is tested both
ways, names, labels and annotations follow one convention, every runbook link is a section of
docs/operations.md under the one runbook base, and every metric is one the worker exports,
aggregated as docs/metrics.md says. promtool comes from deploy/local/promtool.sh."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.promql import database_backed, documented, metric_names, not_under_max

ROOT = Path(__file__).parents[3]
OPERATIONS = ROOT / "docs" / "operations.md"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PROMTOOL_SH = ROOT / "deploy" / "local" / "promtool.sh"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUSRULE_PY = ROOT / "deploy" / "k8s" / "prometheusrule.py"

SEVERITIES = {"critical", "warning"}
ANNOTATIONS = {"summary", "description", "runbook_url"}
PROMTOOL_TIMEOUT = 600  # seconds; a first run downloads Debian's prometheus package (~19 MB)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def alerts() -> list[dict[str, Any]]:
    return [rule for group in load(ALERTS)["groups"] for rule in group["rules"]]


def prometheusrule_py() -> ModuleType:
    """deploy/k8s/prometheusrule.py, which owns the runbook base and writes the runbook_urls."""
    spec = importlib.util.spec_from_file_location("prometheusrule", PROMETHEUSRULE_PY)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text: lower case, punctuation but
    hyphens and underscores dropped, spaces made hyphens, a -N suffix for repeats."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*\s*$", markdown, re.MULTILINE):
        anchor = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        repeat, unique = 0, anchor
        while unique in anchors:
            repeat += 1
            unique = f"{anchor}-{repeat}"
        anchors.add(unique)
    return anchors


@pytest.fixture(scope="module")
def promtool() -> str:
    """The path of a working promtool, fetched by deploy/local/promtool.sh when missing."""
    found = subprocess.run(
        [str(PROMTOOL_SH)], capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT, check=False
    )
    if found.returncode != 0:
        pytest.fail(f"deploy/local/promtool.sh failed:\n{found.stderr}", pytrace=False)
    return found.stdout.strip()


def run_promtool(promtool: str, *args: str) -> None:
    done = subprocess.run(
        [promtool, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"promtool {' '.join(args)} failed:\n{done.stdout}{done.stderr}", pytrace=False)


def test_promtool_unit_tests_of_the_alerts_pass(promtool: str) -> None:
    """Every case of alerts_test.yml gives the alerts (labels and annotations) it expects."""
    run_promtool(promtool, "test", "rules", str(ALERTS_TEST.relative_to(ROOT)))


def test_prometheus_config_and_rules_pass_promtool_check(promtool: str) -> None:
    """prometheus.yml is valid and loads alerts.yml, whose rules are valid PromQL."""
    run_promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT)))
    run_promtool(promtool, "check", "rules", str(ALERTS.relative_to(ROOT)))


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    """alerts_test.yml tests each alert both ways, and names no alert that does not exist."""
    fires: set[str] = set()
    quiet: set[str] = set()
    suite = load(ALERTS_TEST)
    assert suite["rule_files"] == [ALERTS.name]
    for case in suite["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert fires == names, f"no firing case for {sorted(names - fires)}"
    assert quiet == names, f"no quiet case for {sorted(names - quiet)}"


def test_alerts_follow_the_naming_labels_and_annotations_convention() -> None:
    """CamelCase unique names, a known severity, and summary, description and a runbook_url
    pointing at the alert's own section of docs/operations.md under the runbook base."""
    generator = prometheusrule_py()
    base = generator.runbook_base(ALERTS.read_text(encoding="utf-8"))
    rules = alerts()
    assert len(rules) >= 9
    names = [rule["alert"] for rule in rules]
    assert len(set(names)) == len(names), "duplicate alert names"
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"Roi(?:[A-Z][a-z]+)+", name), f"{name} is not CamelCase Roi..."
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert set(rule["annotations"]) == ANNOTATIONS, name
        assert rule["annotations"]["runbook_url"] == f"{base}/docs/operations.md#{name.lower()}"
        assert all(value.strip() for value in rule["annotations"].values()), name


def test_alerts_use_only_metrics_the_worker_exports() -> None:
    """Every roi_* metric in an alert expression is in docs/metrics.md's tables."""
    exported = documented()
    used = set().union(*(metric_names(rule["expr"]) for rule in alerts()))
    assert len(used) >= 8
    assert used <= set(exported), f"not exported: {sorted(used - set(exported))}"


def test_database_backed_metrics_are_aggregated_with_max() -> None:
    """Per-pattern and total metrics, the same on every replica, go through max(), never sum()."""
    shared = database_backed()
    checked = 0
    for rule in alerts():
        wrong = not_under_max(rule["expr"], shared)
        assert not wrong, f"{rule['alert']}: {wrong} not aggregated with max()"
        checked += len(metric_names(rule["expr"]) & shared)
    assert checked >= 4


def test_alerts_select_the_job_prometheus_scrapes() -> None:
    """Each job="..." of the alerts is a job prometheus.yml scrapes (test_k8s: the PodMonitor)."""
    jobs = {job["job_name"] for job in load(PROMETHEUS_CONFIG)["scrape_configs"]}
    selected = {
        match for rule in alerts() for match in re.findall(r'\bjob="([^"]+)"', rule["expr"])
    }
    assert selected
    assert selected <= jobs


def test_prometheus_in_compose_loads_the_alerts() -> None:
    """prometheus.yml names alerts.yml, and compose mounts it beside prometheus.yml."""
    rule_files = load(PROMETHEUS_CONFIG)["rule_files"]
    assert [(PROMETHEUS_CONFIG.parent / name).resolve() for name in rule_files] == [ALERTS]
    mounts = dict(
        str(volume).split(":")[:2] for volume in load(COMPOSE)["services"]["prometheus"]["volumes"]
    )
    config_in_container = PurePosixPath(mounts["./deploy/prometheus/prometheus.yml"])
    (rule_file,) = rule_files
    assert mounts["./deploy/prometheus/alerts.yml"] == str(config_in_container.parent / rule_file)


def test_every_runbook_url_points_at_a_section_of_the_runbook() -> None:
    """Every runbook_url, in the alerts and in their unit tests, is the runbook base, then
    docs/operations.md (a file of this repository), then the GitHub anchor of one of its
    headings."""
    base = prometheusrule_py().runbook_base(ALERTS.read_text(encoding="utf-8"))
    assert re.fullmatch(r"https://[^\s#?]+[^/]", base), base
    anchors = github_anchors(OPERATIONS.read_text(encoding="utf-8"))
    urls = re.findall(
        r"runbook_url: *(\S+)", ALERTS.read_text(encoding="utf-8") + ALERTS_TEST.read_text()
    )
    assert len(urls) >= 2 * len(alerts())
    for url in urls:
        document, _, anchor = url.removeprefix(f"{base}/").partition("#")
        assert url.startswith(f"{base}/"), f"{url} is not under the runbook base {base}"
        assert (ROOT / document).resolve() == OPERATIONS.resolve(), url
        assert anchor in anchors, f"{url}: docs/operations.md has no heading #{anchor}"


def test_runbook_urls_are_rewritten_from_the_base() -> None:
    """Changing the one runbook base line moves every runbook_url to the new base (a trailing
    slash or not), and changes nothing else."""
    generator = prometheusrule_py()
    text = ALERTS.read_text(encoding="utf-8")
    old = generator.runbook_base(text)
    assert generator.with_runbook_urls(text, old) == text
    moved = text.replace(f"# runbook base: {old}", "# runbook base: https://git.test/r/-/blob/v1/")
    rewritten = generator.with_runbook_urls(moved, generator.runbook_base(moved))
    assert re.findall(r"runbook_url: *(\S+)", rewritten) == [
        f"https://git.test/r/-/blob/v1/docs/operations.md#{rule['alert'].lower()}"
        for rule in alerts()
    ]
    masked = re.compile(r"runbook_url: *\S+")
    assert masked.sub("runbook_url:", rewritten) == masked.sub("runbook_url:", moved)
