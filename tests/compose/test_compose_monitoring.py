"""Prometheus config, alert rules (+ their unit tests) and the Grafana dashboard, with the real tools."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.compose.compose_support import ROOT, require_tool
from tests.support import free_port

PROM_DIR = ROOT / "deploy" / "compose" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "compose" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
# Grafana macros are not PromQL: give them the values Grafana would.
MACROS = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "1h"}
ALERTS = [
    "AppDown",
    "AppAbsent",
    "InngestSyncFailing",
    "InngestAppNeverSynced",
    "InngestFunctionFailureRatioHigh",
    "InngestQueueDepthHigh",
]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool", "apt-get install prometheus")
    return subprocess.run([tool, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=60)


def test_promtool_check_config() -> None:
    proc = promtool("check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_check_rules() -> None:
    proc = promtool("check", "rules", "alerts.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_test_rules() -> None:
    proc = promtool("test", "rules", "alerts_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    names = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert sorted(names) == sorted(ALERTS)
    tests = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case.get("exp_alerts")}
    quiet = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if not case.get("exp_alerts")}
    assert fired == set(names), "every alert needs a case where it fires"
    assert quiet == set(names), "every alert needs a case where it stays quiet"


def panel_exprs() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.name}: {panel['title']}", target["expr"]))
    return out


def test_dashboard_loads_and_uses_the_provisioned_datasource() -> None:
    assert DASHBOARDS
    ds = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "./deploy/compose/grafana/dashboards:/etc/grafana/dashboards:ro" in compose
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["uid"] and dash["title"]
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dash["panels"]:
            assert panel["datasource"]["uid"] == uid
            assert panel["targets"], panel["title"]
            assert all(t["datasource"]["uid"] == uid for t in panel["targets"])


def test_dashboard_covers_the_required_signals() -> None:
    text = " ".join(expr for _, expr in panel_exprs())
    for metric in (
        "app_inngest_function_invocations_total",  # runs and failures per function
        "app_inngest_function_invocation_duration_seconds_bucket",  # step latency
        "app_inngest_events_sent_total",  # events sent
        "app_inngest_last_sync_success_timestamp_seconds",  # sync state
        "app_inngest_sync_attempts_total",
        "http_requests_total",  # HTTP RED
        "http_request_duration_seconds_bucket",
        "inngest_queue_depth",  # server queue depth
    ):
        assert metric in text, metric


def _used_metric_names() -> set[str]:
    rules = (PROM_DIR / "alerts.yml").read_text()
    text = rules + " ".join(expr for _, expr in panel_exprs())
    return set(re.findall(r"\b(app_[a-z_]+)", text))


def test_metric_names_exist_in_the_app() -> None:
    metrics = pytest.importorskip("app.metrics", reason="the app package is not installed (make venv)")
    from prometheus_client import REGISTRY

    assert metrics  # registering happens on import
    exported = set()
    for family in REGISTRY.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
            "gauge": [""],
        }.get(family.type, [""])
        exported |= {family.name + s for s in suffixes}
    missing = _used_metric_names() - exported
    assert not missing, f"queried but not exported by the app: {sorted(missing)}"


@pytest.fixture(scope="module")
def prometheus_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real, empty Prometheus on a loopback port: its query API is the PromQL parser."""
    binary = require_tool("prometheus", "apt-get install prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    (work / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("prometheus did not start")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def _query(base: str, expr: str) -> tuple[int, dict[str, Any]]:
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_every_panel_query_parses(prometheus_api: str) -> None:
    failures = []
    for where, expr in panel_exprs():
        status, body = _query(prometheus_api, expr)
        if status != 200 or body.get("status") != "success":
            failures.append(f"{where}: {body.get('error')}")
    assert not failures, "\n".join(failures)


def test_the_parser_check_is_real(prometheus_api: str) -> None:
    status, body = _query(prometheus_api, "sum by (function (rate(x[1m]))")
    assert status == 400 and body["errorType"] == "bad_data"
