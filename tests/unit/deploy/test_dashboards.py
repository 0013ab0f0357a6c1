"""deploy/grafana/: the dashboards are well-formed, use only the provisioned data sources and the
metrics the worker exports, and the compose stack provisions them as the files say.
tests/integration/test_dashboard_queries.py runs their SQL against a migrated database."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promql import database_backed, documented, metric_names, not_under_max
from tests.unit.deploy.test_alerts import promtool, run_promtool

__all__ = ["promtool"]  # the fixture, shared with the alert tests

ROOT = Path(__file__).parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "roi.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "roi.yml"
READONLY_SQL = ROOT / "deploy" / "postgres" / "readonly-role.sql"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

EXPECTED = {"roi-overview": "ROI overview", "roi-worker-health": "Worker health", "roi-api": "API"}
GRID_COLUMNS = 24
SQL_MACROS = {"$__timeFrom()", "$__timeTo()"}  # the ones the integration test substitutes


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard, every *.json of deploy/grafana/dashboards/."""
    found = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(board, dict), path.name
        found[path.name] = board
    return found


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in collapsed rows included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(board: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every query of every panel."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel["title"], target


def prometheus_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for title, target in targets(board):
        if "expr" in target:
            yield title, target["expr"]


def provisioned() -> dict[str, str]:
    """Data source uid -> type, from the provisioning file."""
    return {source["uid"]: source["type"] for source in load_yaml(DATASOURCES)["datasources"]}


def compose_service(name: str) -> dict[str, Any]:
    service = load_yaml(COMPOSE)["services"][name]
    assert isinstance(service, dict)
    return service


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Host path -> container path of a service's bind mounts."""
    return {
        parts[0]: parts[1]
        for parts in (str(volume).split(":") for volume in service.get("volumes", []))
        if parts[0].startswith(".")
    }


def test_dashboards_are_json_with_their_fixed_uids_and_titles() -> None:
    """Exactly the three dashboards, each with its fixed uid and title."""
    found = {board["uid"]: board["title"] for board in dashboards().values()}
    assert found == EXPECTED
    for board in dashboards().values():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"])
        assert isinstance(board["schemaVersion"], int)


def test_panels_have_unique_ids_and_do_not_overlap_on_the_grid() -> None:
    """Panel ids are unique per dashboard, and every panel lies inside the 24-column grid
    without covering another."""
    for name, board in dashboards().items():
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        taken: dict[tuple[int, int], str] = {}
        for panel in panels(board):
            grid = panel["gridPos"]
            assert grid["x"] >= 0, f"{name}: {panel['title']}"
            assert min(grid["w"], grid["h"]) > 0, f"{name}: {panel['title']}"
            assert grid["x"] + grid["w"] <= GRID_COLUMNS, f"{name}: {panel['title']}"
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    other = taken.setdefault((x, y), panel["title"])
                    assert other == panel["title"], f"{name}: {panel['title']} covers {other}"


def test_every_query_uses_a_provisioned_data_source() -> None:
    """Each panel, query and variable names the uid and type of a provisioned data source."""
    sources = provisioned()
    used = set()
    for name, board in dashboards().items():
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            assert sources.get(panel["datasource"]["uid"]) == panel["datasource"]["type"], (
                f"{name}: {panel['title']}"
            )
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], f"{name}: {panel['title']}"
                used.add(target["datasource"]["uid"])
        for variable in board["templating"]["list"]:
            source = variable["datasource"]
            assert sources.get(source["uid"]) == source["type"], f"{name}: ${variable['name']}"
    assert used == set(sources), "a provisioned data source is never used"


def test_prometheus_queries_use_only_metrics_the_worker_exports() -> None:
    """Every roi_* metric of a panel or variable query is in docs/metrics.md's tables."""
    exported = set(documented())
    used: set[str] = set()
    for board in dashboards().values():
        for _, expr in prometheus_queries(board):
            used |= metric_names(expr)
        for variable in board["templating"]["list"]:
            used |= metric_names(variable["definition"])
    assert used <= exported, f"not exported: {sorted(used - exported)}"
    assert len(used) >= 15


def test_worker_health_shows_what_an_operator_needs() -> None:
    """Throughput by outcome, lag, batch latency, dead letters, errors and readiness are there."""
    board = next(b for b in dashboards().values() if b["uid"] == "roi-worker-health")
    used = set().union(*(metric_names(expr) for _, expr in prometheus_queries(board)))
    assert {
        "roi_worker_messages_total",
        "roi_worker_consumer_lag",
        "roi_worker_batch_duration_seconds",
        "roi_worker_dead_letters_total",
        "roi_worker_db_errors_total",
        "roi_worker_kafka_errors_total",
        "roi_worker_ready",
    } <= used
    exprs = " ".join(expr for _, expr in prometheus_queries(board))
    assert "roi_worker_batch_duration_seconds_bucket" in exprs
    assert "by (outcome)" in exprs
    assert "by (reason)" in exprs


def test_worker_health_shows_stall_lag_and_readiness_per_replica() -> None:
    """Stall, lag and readiness each have a panel per replica (by instance), and no query takes
    the newest last commit over the replicas, which hides a stalled one."""
    board = next(b for b in dashboards().values() if b["uid"] == "roi-worker-health")
    per_instance: set[str] = set()
    for title, expr in prometheus_queries(board):
        assert not re.search(r"\bmax\s*\(\s*roi_worker_last_commit", expr), title
        if re.search(r"\bby \([^()]*\binstance\b", expr) or "{{instance}}" in title:
            per_instance |= metric_names(expr)
    for _, target in targets(board):
        if "{{instance}}" in target.get("legendFormat", ""):
            per_instance |= metric_names(target["expr"])
    assert {
        "roi_worker_last_commit_timestamp_seconds",
        "roi_worker_partition_last_stored_timestamp_seconds",
        "roi_worker_stalled_partitions",
        "roi_worker_consumer_lag",
        "roi_worker_ready",
    } <= per_instance


def test_the_api_dashboard_shows_requests_latency_load_and_the_pool() -> None:
    """Request rate by route and status, p50/p95/p99 latency from the histogram, requests in
    flight and open streams, and the pool's use, of the job Prometheus scrapes the API as."""
    board = next(b for b in dashboards().values() if b["uid"] == "roi-api")
    exprs = [expr for _, expr in prometheus_queries(board)]
    used = set().union(*(metric_names(expr) for expr in exprs))
    assert {
        "roi_api_requests_total",
        "roi_api_request_duration_seconds",
        "roi_api_requests_in_flight",
        "roi_api_streams_open",
        "roi_api_db_pool_connections",
        "roi_api_db_pool_idle_connections",
        "roi_api_db_pool_waiting_requests",
        "roi_api_db_pool_max_connections",
    } <= used
    joined = " ".join(exprs)
    assert "by (route, status)" in joined
    histogram = "roi_api_request_duration_seconds_bucket"
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate({histogram}" in joined
    jobs = set(re.findall(r'\bjob="([^"]+)"', joined))
    scraped = {job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    assert jobs == {"roi-worker-api"} <= scraped


# What the stat panels show (dashboard uid, title) -> value, in the scenarios of
# test_stat_panels_show_what_is_true: 0 where 0 is the truth, None ("No data") where the figure
# is unknown.
ALL_DOWN = "every worker has been down for an hour"
ONE_STALLED = "three replicas, one stalled for 10 minutes; no pattern rated failed"
STATS: dict[tuple[str, str], dict[str, float | None]] = {
    ("roi-worker-health", "Replicas up"): {ALL_DOWN: 0, ONE_STALLED: 3},
    ("roi-worker-health", "Replicas ready"): {ALL_DOWN: 0, ONE_STALLED: 2},
    ("roi-worker-health", "Consumer lag"): {ALL_DOWN: None, ONE_STALLED: 50},
    # The stalled replica's age, not the busy one's (0 s) nor the never-committed one's (300 s).
    ("roi-worker-health", "Since the last commit (oldest replica)"): {
        ALL_DOWN: None,
        ONE_STALLED: 600,
    },
    ("roi-worker-health", "Events stored"): {ALL_DOWN: 0, ONE_STALLED: 1},
    ("roi-worker-health", "Dead letters (1 h)"): {ALL_DOWN: 0, ONE_STALLED: 0},
    ("roi-overview", "Net cost saved"): {ALL_DOWN: None, ONE_STALLED: 5},
    ("roi-overview", "Patterns tracked"): {ALL_DOWN: None, ONE_STALLED: 1},
    ("roi-overview", "Patterns rated failed"): {ALL_DOWN: None, ONE_STALLED: 0},
    # No API series in either scenario: no API replica, no request (the quantile unknown).
    ("roi-api", "API replicas up"): {ALL_DOWN: 0, ONE_STALLED: 0},
    ("roi-api", "Requests per second"): {ALL_DOWN: 0, ONE_STALLED: 0},
    ("roi-api", "p95 latency (5 m)"): {ALL_DOWN: None, ONE_STALLED: None},
    ("roi-api", "Server errors (1 h)"): {ALL_DOWN: 0, ONE_STALLED: 0},
    ("roi-api", "In flight"): {ALL_DOWN: 0, ONE_STALLED: 0},
    ("roi-api", "Waiting for a connection"): {ALL_DOWN: 0, ONE_STALLED: 0},
}
_REPLICAS = ("a", "b", "c")
# series -> promtool values, one sample a minute for 120 minutes.
SCENARIOS: dict[str, dict[str, str]] = {
    ALL_DOWN: {
        **{f'up{{job="roi-worker", instance="{r}"}}': "1x59 0x60" for r in _REPLICAS},
        **{
            f'{name}{{job="roi-worker", instance="{r}"{labels}}}': f"{value}x59"
            for r in _REPLICAS
            for name, labels, value in (
                ("roi_worker_ready", "", 1),
                ("roi_worker_consumer_lag", ', topic="t", partition="0"', 0),
                ("roi_worker_last_commit_timestamp_seconds", "", 100),
                ("roi_worker_messages_total", ', outcome="inserted"', 100),
                ("roi_worker_dead_letters_total", ', reason="invalid_json"', 0),
                ("roi_cost_saved_usd", "", 5),
                ("roi_pattern_executions_total", ', pattern_id="p"', 10),
                ("roi_pattern_effectiveness", ', pattern_id="p", rating="failed"', 0),
            )
        },
    },
    ONE_STALLED: {
        **{f'up{{job="roi-worker", instance="{r}"}}': "1x120" for r in _REPLICAS},
        'roi_worker_ready{job="roi-worker", instance="a"}': "1x120",
        'roi_worker_ready{job="roi-worker", instance="b"}': "0x120",
        'roi_worker_ready{job="roi-worker", instance="c"}': "1x120",
        'roi_worker_consumer_lag{job="roi-worker", instance="a", topic="t", partition="0"}': (
            "0x120"
        ),
        'roi_worker_consumer_lag{job="roi-worker", instance="b", topic="t", partition="1"}': (
            "50x120"
        ),
        # a commits every minute; b stopped at 110 min; c never committed and started at 115.
        'roi_worker_last_commit_timestamp_seconds{job="roi-worker", instance="a"}': "0+60x120",
        'roi_worker_last_commit_timestamp_seconds{job="roi-worker", instance="b"}': (
            "0+60x110 6600x10"
        ),
        'roi_worker_last_commit_timestamp_seconds{job="roi-worker", instance="c"}': "0x120",
        'process_start_time_seconds{job="roi-worker", instance="a"}': "0x120",
        'process_start_time_seconds{job="roi-worker", instance="b"}': "0x120",
        'process_start_time_seconds{job="roi-worker", instance="c"}': "6900x120",
        'roi_worker_messages_total{job="roi-worker", instance="a", outcome="inserted"}': (
            "0+60x120"
        ),
        **{
            f'{name}{{job="roi-worker", instance="{r}"{labels}}}': values
            for r in _REPLICAS
            for name, labels, values in (
                ("roi_worker_dead_letters_total", ', reason="invalid_json"', "0x120"),
                ("roi_cost_saved_usd", "", "5x120"),
                ("roi_pattern_executions_total", ', pattern_id="p"', "10x120"),
                ("roi_pattern_effectiveness", ', pattern_id="p", rating="failed"', "0x120"),
            )
        },
    },
}


def stat_panels() -> dict[tuple[str, str], str]:
    """(dashboard uid, title) -> the query of every stat panel."""
    found = {}
    for board in dashboards().values():
        for panel in panels(board):
            if panel["type"] == "stat":
                (target,) = panel["targets"]
                found[board["uid"], panel["title"]] = target["expr"]
    return found


def test_stat_panels_show_what_is_true(promtool: str, tmp_path: Path) -> None:
    """Evaluated by promtool: with every worker down, counts of what only a running worker
    does show 0 and figures only a worker can know show No data (the per-pattern ones
    included: "Patterns rated failed" is unknown, not 0); with one replica of three stalled,
    the time since the last commit is the stalled replica's."""
    queries = stat_panels()
    assert set(STATS) <= set(queries)
    tests = []
    for scenario, series in SCENARIOS.items():
        checks = [
            {
                "expr": queries[key],
                "eval_time": "120m",
                "exp_samples": [] if value is None else [{"labels": "{}", "value": value}],
            }
            for key, expected in STATS.items()
            for value in [expected[scenario]]
        ]
        tests.append(
            {
                "name": scenario,
                "interval": "1m",
                "input_series": [{"series": name, "values": v} for name, v in series.items()],
                "promql_expr_test": checks,
            }
        )
    suite = tmp_path / "stat_panels_test.yml"
    suite.write_text(yaml.safe_dump({"rule_files": [], "tests": tests}), encoding="utf-8")
    run_promtool(promtool, "test", "rules", str(suite))


def test_database_backed_metrics_are_aggregated_with_max() -> None:
    """Per-pattern and total metrics, the same on every replica, go through max(), never sum()."""
    shared = database_backed()
    checked = 0
    for name, board in dashboards().items():
        for title, expr in prometheus_queries(board):
            wrong = not_under_max(expr, shared)
            assert not wrong, f"{name}: {title}: {wrong} not aggregated with max()"
            checked += len(metric_names(expr) & shared)
    assert checked >= 8


def test_sql_queries_use_only_the_macros_the_integration_test_knows() -> None:
    """PostgreSQL panels are raw SQL using no Grafana macro or variable but $__timeFrom() and
    $__timeTo(), so that the integration test runs them as Grafana would."""
    queries = 0
    for name, board in dashboards().items():
        for title, target in targets(board):
            if "expr" in target:
                continue
            queries += 1
            assert target["rawQuery"] is True
            assert target["format"] in ("table", "time_series"), f"{name}: {title}"
            macros = set(re.findall(r"\$\w*(?:\(\))?", target["rawSql"]))
            assert macros <= SQL_MACROS, f"{name}: {title}: {sorted(macros - SQL_MACROS)}"
    assert queries >= 3


# ---------------------------------------------------------------------------- provisioning


def test_dashboard_provider_reads_the_mounted_dashboards() -> None:
    """The provider's path is where compose mounts deploy/grafana/dashboards, and the home
    dashboard is one of them."""
    (provider,) = load_yaml(PROVIDERS)["providers"]
    grafana = compose_service("grafana")
    mounted = mounts(grafana)
    assert provider["type"] == "file"
    assert mounted["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounted["./deploy/grafana/provisioning/datasources"] == (
        "/etc/grafana/provisioning/datasources"
    )
    assert mounted["./deploy/grafana/provisioning/dashboards"] == (
        "/etc/grafana/provisioning/dashboards"
    )
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    home_dir, _, home_file = home.rpartition("/")
    assert home_dir == provider["options"]["path"]
    assert home_file in dashboards()


def test_grafana_service_uses_a_pinned_image_on_localhost() -> None:
    """grafana/grafana-oss at a fixed version, published on 127.0.0.1 only."""
    grafana = compose_service("grafana")
    image, _, tag = grafana["image"].partition(":")
    assert image == "grafana/grafana-oss"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin a version, not {tag!r}"
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]


def test_datasources_point_at_the_compose_services() -> None:
    """Prometheus is the prometheus service; PostgreSQL is the postgres service's database,
    read as the role readonly-role.sql creates, with the password compose gives both sides."""
    sources = {source["uid"]: source for source in load_yaml(DATASOURCES)["datasources"]}
    assert sources["roi-prometheus"]["url"] == "http://prometheus:9090"
    postgres_source = sources["roi-postgres"]
    postgres = compose_service("postgres")
    grafana = compose_service("grafana")
    assert postgres_source["url"] == "postgres:5432"
    assert postgres_source["jsonData"]["database"] == postgres["environment"]["POSTGRES_DB"]
    role = re.search(r"'CREATE ROLE (\w+)'", READONLY_SQL.read_text())
    assert role
    assert postgres_source["user"] == role[1]
    variable = re.fullmatch(r"\$(\w+)", postgres_source["secureJsonData"]["password"])
    assert variable, "the password comes from the environment"
    assert grafana["environment"][variable[1]] == postgres["environment"]["PG_READONLY_PASSWORD"]
    init = mounts(postgres)["./deploy/postgres/readonly-role.sql"]
    assert init.startswith("/docker-entrypoint-initdb.d/")


def test_readonly_role_may_only_read() -> None:
    """readonly-role.sql grants SELECT, USAGE and CONNECT only (now and by default), to a role
    without special powers whose sessions are read-only."""
    text = READONLY_SQL.read_text(encoding="utf-8")
    grants = re.findall(r"\bGRANT\s+(.+?)\s+ON\b", text)
    assert grants
    assert {privilege.strip() for grant in grants for privilege in grant.split(",")} <= {
        "SELECT",
        "USAGE",
        "CONNECT",
    }
    assert re.search(r"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES", text)
    assert re.search(r"NOSUPERUSER NOCREATEDB NOCREATEROLE", text)
    assert "SET default_transaction_read_only = on" in text


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_links_to_the_other_by_tag(name: str) -> None:
    """Each dashboard carries the roi-worker tag and a link to the dashboards with that tag."""
    board = next(b for b in dashboards().values() if b["uid"] == name)
    assert "roi-worker" in board["tags"]
    assert any(link.get("tags") == ["roi-worker"] for link in board["links"])
