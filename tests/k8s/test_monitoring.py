"""The k8s monitoring objects carry the same alerts and dashboards as compose, and select what exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT
from tests.k8s.conftest import K8S, Doc, find, load_compose, one, render

RULES = sorted((ROOT / "deploy/compose/prometheus").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy/compose/grafana/dashboards").glob("*.json"))


def _compose_groups() -> list[Doc]:
    groups: list[Doc] = []
    for path in RULES:
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and "groups" in doc and "tests" not in doc and "rule_files" not in doc:
            groups += doc["groups"]
    return groups


def test_prometheus_rule_groups_equal_the_compose_rules(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    rule = one(docs, "PrometheusRule", "fastapi-inngest")
    groups = _compose_groups()
    assert groups, "no compose rule files found"
    assert rule["spec"]["groups"] == groups, "run `make k8s-sync-monitoring`"


def test_dashboard_configmap_equals_the_compose_dashboards(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    cm = one(docs, "ConfigMap", "fastapi-inngest-dashboards")
    assert DASHBOARDS, "no compose dashboards found"
    assert cm["data"] == {p.name: p.read_text() for p in DASHBOARDS}, "run `make k8s-sync-monitoring`"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    for text in cm["data"].values():
        json.loads(text)


def test_sync_script_reports_no_drift() -> None:
    result = subprocess.run(
        [sys.executable, str(K8S / "sync_monitoring.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchExpressions"}, selector
    for expr in selector["matchExpressions"]:
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def test_service_monitor_scrapes_the_app_metrics_port_and_the_server(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    sm = one(docs, "ServiceMonitor", "fastapi-inngest")
    selected = [s for s in find(docs, "Service") if _selects(sm["spec"]["selector"], s["metadata"]["labels"])]
    # Each endpoint scrapes the Services that have a port of its name.
    targets = {
        (svc["metadata"]["name"], port["name"], port["port"], endpoint["path"])
        for endpoint in sm["spec"]["endpoints"]
        for svc in selected
        for port in svc["spec"]["ports"]
        if port["name"] == endpoint["port"]
    }
    expected = {("app-metrics", "metrics", 9000, "/metrics")}
    if name != "cloud":
        expected.add(("inngest", "http", 8288, "/metrics"))
    assert targets == expected  # never the users' Service `app` (its /metrics is a 404)
    # The job label comes from app.kubernetes.io/name: `up{job="app"}` in the compose alerts keeps working.
    assert sm["spec"]["jobLabel"] == "app.kubernetes.io/name"
    jobs = {svc["metadata"]["labels"]["app.kubernetes.io/name"] for svc in selected}
    assert jobs == ({"app"} if name == "cloud" else {"app", "inngest"})


def test_alerts_refer_to_scraped_jobs(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    rule = one(docs, "PrometheusRule", "fastapi-inngest")
    exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    compose_jobs = {c["job_name"] for c in load_compose("deploy/compose/prometheus/prometheus.yml")["scrape_configs"]}
    for job in compose_jobs:
        if f'job="{job}"' in exprs:
            one(docs, "Service", job)


def test_prometheus_annotations_match_the_container_port(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    for deployment in find(docs, "Deployment"):
        template = deployment["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
        assert int(annotations["prometheus.io/port"]) in ports


def test_release_label_is_set_and_patchable(tmp_path: Path) -> None:
    """kube-prometheus-stack selects by `release`; an overlay changes it with one JSON patch."""
    base = render(K8S / "overlays" / "self-hosted")
    for kind in ("ServiceMonitor", "PrometheusRule"):
        for obj in find(base, kind):
            assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(K8S / "overlays" / "self-hosted", overlay)],
                "patches": [
                    {
                        "target": {"group": "monitoring.coreos.com"},
                        "patch": '[{"op": "replace", "path": "/metadata/labels/release", "value": "prom"}]',
                    }
                ],
            }
        )
    )
    patched = render(overlay)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        for obj in find(patched, kind):
            assert obj["metadata"]["labels"]["release"] == "prom"


def test_dashboard_takes_the_max_of_the_shared_queue_depth() -> None:
    """Every ha server replica reports the same shared queue: a sum would multiply it by the replicas."""
    exprs = [
        target["expr"]
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel.get("targets", [])
        if "inngest_queue_depth" in target.get("expr", "")
    ]
    assert exprs
    for expr in exprs:
        assert expr.replace(" ", "").startswith("max("), expr


def test_never_synced_alert_is_per_app_not_per_replica() -> None:
    """In cloud only the replica that served the sync Job's PUT records a sync (promtool case in
    deploy/compose/prometheus/alerts_test.yml: two replicas, one synced, no alert)."""
    (rule,) = [r for g in _compose_groups() for r in g["rules"] if r.get("alert") == "InngestAppNeverSynced"]
    assert "by (job)" in rule["expr"] and "instance" not in rule["expr"]
