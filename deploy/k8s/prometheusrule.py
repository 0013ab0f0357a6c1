"""Writes what follows from deploy/prometheus/alerts.yml. Run it after changing the alerts or the
runbook base:

    .venv/bin/python deploy/k8s/prometheusrule.py           # rewrite what is out of date
    .venv/bin/python deploy/k8s/prometheusrule.py --check   # exit 1 when something is

1. Every `runbook_url` of alerts.yml and of its unit tests (alerts_test.yml) becomes
   `<runbook base>/docs/operations.md#<alert name in lower case>`: the alert's section of the
   runbook, under the base set once, on the `# runbook base: URL` line of alerts.yml.
2. deploy/k8s/prometheusrule.yaml: the groups of alerts.yml as a Prometheus Operator
   PrometheusRule.

tests/unit/deploy/test_k8s.py runs the check.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parent / "prometheus" / "alerts.yml"
ALERTS_TEST = HERE.parent / "prometheus" / "alerts_test.yml"
MANIFEST = HERE / "prometheusrule.yaml"
RUNBOOK = "docs/operations.md"  # relative to the runbook base

HEADER = """\
# Generated from deploy/prometheus/alerts.yml by deploy/k8s/prometheusrule.py: edit the alerts
# there and run `.venv/bin/python deploy/k8s/prometheusrule.py`, never this file.
# The Prometheus that should load it must select it (its ruleSelector, e.g. a `release` label
# with kube-prometheus-stack).
"""

_BASE = re.compile(r"^# runbook base: (\S+)$", re.MULTILINE)
# `- alert: Name` in alerts.yml, `alertname: Name` in alerts_test.yml: the alert that the
# runbook_url lines after it, up to the next such line, belong to.
_ALERT = re.compile(r"^\s*(?:- )?(?:alert|alertname): *(\S+)\s*$")
_RUNBOOK_URL = re.compile(r"^(\s*runbook_url: *)\S*\s*$")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the longer PromQL expressions) as literal blocks, as in alerts.yml."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def runbook_base(alerts_text: str) -> str:
    """The base URL on the `# runbook base: URL` line of an alerts file, without a trailing /.
    Raises ValueError when there is no such line, or more than one."""
    found = _BASE.findall(alerts_text)
    if len(found) != 1:
        raise ValueError(f"alerts.yml needs exactly one '# runbook base: URL' line, not {found}")
    return str(found[0]).rstrip("/")


def runbook_url(base: str, alert: str) -> str:
    """The alert's section of docs/operations.md: its heading is the alert's name, whose GitHub
    anchor is the name in lower case."""
    return f"{base}/{RUNBOOK}#{alert.lower()}"


def with_runbook_urls(text: str, base: str) -> str:
    """The text with every `runbook_url:` value set to the runbook_url of the alert named last
    before it; comments and layout stay as they are. Raises ValueError for a runbook_url that
    follows no alert."""
    alert: str | None = None
    lines = []
    for line in text.splitlines(keepends=True):
        named = _ALERT.match(line)
        if named:
            alert = named[1]
        url = _RUNBOOK_URL.match(line)
        if not url:
            lines.append(line)
        elif alert is None:
            raise ValueError(f"a runbook_url before any alert: {line.strip()}")
        else:
            lines.append(f"{url[1]}{runbook_url(base, alert)}\n")
    return "".join(lines)


def manifest(alerts_text: str) -> str:
    """The PrometheusRule carrying exactly the groups of an alerts file, as YAML text."""
    groups = yaml.safe_load(alerts_text)["groups"]
    rule: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "roi-worker", "labels": {"app.kubernetes.io/name": "roi-worker"}},
        "spec": {"groups": groups},
    }
    # No line wrapping: a long annotation stays on one line, as a reader greps for it.
    body = yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)
    return HEADER + body


def expected() -> dict[Path, str]:
    """Each generated or rewritten file with the text it should have."""
    alerts_text = ALERTS.read_text(encoding="utf-8")
    base = runbook_base(alerts_text)
    alerts_text = with_runbook_urls(alerts_text, base)
    return {
        ALERTS: alerts_text,
        ALERTS_TEST: with_runbook_urls(ALERTS_TEST.read_text(encoding="utf-8"), base),
        MANIFEST: manifest(alerts_text),
    }


def main(argv: list[str]) -> int:
    if argv not in ([], ["--check"]):
        print(__doc__, file=sys.stderr)
        return 2
    stale = [
        (path, text)
        for path, text in expected().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    if argv == ["--check"]:
        for path, _ in stale:
            print(f"{path} is out of date: run {sys.argv[0]}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in stale:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
