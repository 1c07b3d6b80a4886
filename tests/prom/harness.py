"""Run Debian's `prometheus` on loopback with the repo's scrape config, targets rewritten to local ports.

The derived config keeps everything from deploy/compose/prometheus/prometheus.yml except: intervals (1 s so
a test sees several scrapes and rule evaluations in seconds), target addresses (compose service names ->
127.0.0.1:<port>; DNS discovery becomes a static target) and rule file paths (absolute, the repo's files).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from tests.support import ROOT, free_port
from tests.support.process import stop_process

COMPOSE_PROMETHEUS = ROOT / "deploy" / "compose" / "prometheus" / "prometheus.yml"
DASHBOARDS = ROOT / "deploy" / "compose" / "grafana" / "dashboards"

# Grafana's built-in variables, as a 1 s scrape interval makes them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "15s",
    "${__interval}": "15s",
    "$__range": "5m",
    "${__range}": "5m",
}


def derive_config(source: Path, hosts: dict[str, str], interval: str = "1s") -> dict[str, Any]:
    """The repo's config with `hosts` (compose name or name:port -> 127.0.0.1:port) and short intervals.

    A target whose host is not in `hosts` fails loudly: a new scrape job needs a local counterpart here.
    """
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    config.setdefault("global", {}).update(
        scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval
    )
    config["rule_files"] = [str((source.parent / f).resolve()) for f in config.get("rule_files", [])]
    for job in config.get("scrape_configs", []):
        for key in ("scrape_interval", "scrape_timeout"):
            if key in job:
                job[key] = interval
        static = job.get("static_configs", [])
        for group in static:
            group["targets"] = [_local(target, hosts, job["job_name"]) for target in group["targets"]]
        for dns in job.pop("dns_sd_configs", []):
            for name in dns["names"]:
                target = f"{name}:{dns['port']}" if "port" in dns else name
                static.append({"targets": [_local(target, hosts, job["job_name"])]})
        job["static_configs"] = static
    return config


def _local(target: str, hosts: dict[str, str], job: str) -> str:
    host = target.rsplit(":", 1)[0]
    for key in (target, host):
        if key in hosts:
            return hosts[key]
    raise AssertionError(f"scrape job {job!r}: no loopback counterpart for target {target!r} (have {sorted(hosts)})")


def dashboard_queries() -> list[tuple[str, str]]:
    """(dashboard/panel title, PromQL) for every query target of every provisioned dashboard."""
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]], board: str) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((f"{board} / {panel.get('title', '?')}", target["expr"]))
            walk(panel.get("panels", []), board)

    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        walk(board.get("panels", []), path.stem)
    return found


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"unknown Grafana variable(s) {leftover} in {expr!r}: add a value to GRAFANA_VARIABLES"
    return expr


class Listening(Protocol):
    """A process handle serving HTTP on 127.0.0.1:`port` (the stand-in, the real server)."""

    port: int


class AppListening(Protocol):
    """The app: its API on `port`, /metrics on `metrics_port` (METRICS_PORT)."""

    port: int
    metrics_port: int


def start_prometheus(make: Callable[[], Prometheus], app: AppListening, server: Listening) -> Prometheus:
    """A Prometheus with the repo's config: job `app` scrapes the app's metrics port, job `inngest` `server`.

    Only `app:9000` maps to the app: a config still scraping the API port (`app:8000`) fails loudly.
    """
    prom = make()
    hosts = {
        "app:9000": f"127.0.0.1:{app.metrics_port}",
        "inngest": f"127.0.0.1:{server.port}",
        "localhost:9090": prom.address,
        "prometheus": prom.address,
    }
    return prom.start(derive_config(COMPOSE_PROMETHEUS, hosts))


def wait_all_up(prom: Prometheus, jobs: set[str]) -> None:
    def up() -> bool:
        health = {t["labels"]["job"]: t["health"] for t in prom.targets()}
        return jobs <= set(health) and all(health[j] == "up" for j in jobs)

    prom.wait(up, 20, f"targets {sorted(jobs)} up")


class Prometheus:
    """A Prometheus server process with its TSDB in a temp dir; `query()` goes through the HTTP API."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, config: dict[str, Any], timeout: float = 30) -> Prometheus:
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address={self.address}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait(lambda: self.http.get("/-/ready").status_code == 200, timeout, "Prometheus /-/ready")
        return self

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)
        self.http.close()

    close = stop  # the shared fixture teardown (tests/support/process.closed_after) closes handles

    def label(self) -> str:
        return f"prometheus log ({self.workdir.name})"

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                last = predicate()
                if last:
                    return last
            except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
                last = exc
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

    # --- HTTP API -------------------------------------------------------------------------------------
    def api(self, path: str, **params: Any) -> Any:
        res = self.http.get(f"/api/v1/{path}", params=params)
        body = res.json()
        if body.get("status") != "success":
            raise PromQLError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    def values(self, expr: str, by: str) -> dict[str, float]:
        """{label value: sample value} of an instant vector query."""
        return {r["metric"].get(by, ""): float(r["value"][1]) for r in self.query(expr)}

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def rule_groups(self) -> list[dict[str, Any]]:
        return list(self.api("rules")["groups"])

    def metric_names(self) -> set[str]:
        return set(self.api("label/__name__/values"))


class PromQLError(Exception):
    pass
