"""Writes deploy/k8s/prometheusrule.yaml: the groups of deploy/prometheus/alerts.yml as a
Prometheus Operator PrometheusRule. Run it after changing the alerts:

    .venv/bin/python deploy/k8s/prometheusrule.py           # rewrite the manifest
    .venv/bin/python deploy/k8s/prometheusrule.py --check   # exit 1 when it is out of date

tests/unit/test_k8s.py runs the check.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parent / "prometheus" / "alerts.yml"
MANIFEST = HERE / "prometheusrule.yaml"

HEADER = """\
# Generated from deploy/prometheus/alerts.yml by deploy/k8s/prometheusrule.py: edit the alerts
# there and run `.venv/bin/python deploy/k8s/prometheusrule.py`, never this file.
# The Prometheus that should load it must select it (its ruleSelector, e.g. a `release` label
# with kube-prometheus-stack).
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the longer PromQL expressions) as literal blocks, as in alerts.yml."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


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


def main(argv: list[str]) -> int:
    expected = manifest(ALERTS.read_text(encoding="utf-8"))
    if argv == ["--check"]:
        if MANIFEST.read_text(encoding="utf-8") != expected:
            print(f"{MANIFEST} is out of date: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    MANIFEST.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
