"""The real `inngest start` scraped by a real Prometheus with the repo's config and alert rules.

The server's `/metrics` carries `inngest_queue_depth` (the gauge the queue-depth alert and the KEDA
autoscaling in the Kubernetes docs read). With the app frozen (SIGSTOP: the server's calls hang, nothing
finishes), events beyond the alert's threshold pile up in the queue: the alert's own expression, as the
rule file has it, becomes true and the alert goes pending (it fires after its `for`; promtool's rule
tests cover the timing).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prom.harness import COMPOSE_PROMETHEUS, Prometheus, start_prometheus, wait_all_up
from tests.standin.fixtures import AppProcess
from tests.support import wait_until
from tests.support.inngest import inngest_server

ALERT = "InngestQueueDepthHigh"
SMOKE = "fastapi-app-test-integration"
BATCH = 100


def alert_rule() -> dict[str, Any]:
    rules = yaml.safe_load((Path(COMPOSE_PROMETHEUS).parent / "alerts.yml").read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == ALERT]
    return dict(rule)


def alert_state(prom: Prometheus) -> tuple[str, float | None]:
    """The alert's state (inactive when Prometheus lists no instance of it) and its value."""
    for alert in prom.api("alerts")["alerts"]:
        if alert["labels"]["alertname"] == ALERT:
            return alert["state"], float(alert["value"])
    return "inactive", None


@pytest.mark.slow
def test_real_server_queue_depth_is_scraped_and_its_alert_evaluates(
    prometheus_factory: Callable[[], Prometheus], app_factory: Callable[..., AppProcess]
) -> None:
    rule = alert_rule()
    (threshold,) = (int(n) for n in re.findall(r"inngest_queue_depth\)\s*>\s*(\d+)", rule["expr"]))
    with inngest_server() as server:
        app = app_factory(server)
        wait_until(lambda: SMOKE in server.functions(), 60, what="the app's functions on the server")
        prom = start_prometheus(prometheus_factory, app, server)
        wait_all_up(prom, {"app", "inngest", "prometheus"})

        idle = prom.wait(lambda: prom.query('inngest_queue_depth{job="inngest"}'), 20, "inngest_queue_depth")
        assert float(idle[0]["value"][1]) < threshold
        (loaded,) = [r for r in prom.rules() if r["name"] == ALERT]
        assert loaded["health"] == "ok" and loaded["query"] == prom_normal(rule["expr"])
        assert alert_state(prom)[0] == "inactive"

        app.signal(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            backlog = threshold + BATCH
            for _ in range(backlog // BATCH):
                server.send_many([{"name": "test/integration", "data": {"message": "queued"}}] * BATCH)
            state, value = prom.wait(
                lambda: (s := alert_state(prom))[0] == "pending" and s, 180, f"{ALERT} pending on the real depth"
            )
            assert value is not None and value > threshold
            print(
                f"{ALERT} {state} at inngest_queue_depth {value:.0f} (threshold {threshold}, {backlog} events) "
                f"{time.monotonic() - frozen:.1f}s after the app froze"
            )
        finally:
            app.signal(signal.SIGCONT)


def prom_normal(expr: str) -> str:
    """The expression as Prometheus prints it back (whitespace normalised)."""
    return " ".join(expr.split())
