"""A real Prometheus scrapes the app (and the stand-in server) with the repo's scrape config and rules.

1. Harness: targets up, the app's static gauges, HTTP counters equal to the requests made.
2. Workload: every example workflow driven by the stand-in through the app's own event API; the app's
   function/step/event/sync counters, as Prometheus scraped them, equal what the stand-in observed; every
   alert rule is healthy and every dashboard query evaluates (with data, where the metric exists).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import yaml

from tests.prom.harness import (
    COMPOSE_PROMETHEUS,
    Prometheus,
    PromQLError,
    dashboard_queries,
    derive_config,
    grafana_to_promql,
    start_prometheus,
    wait_all_up,
)
from tests.standin.fixtures import AppProcess, StandInProcess
from tests.support import wait_until

APP_ID = "fastapi-app"
FUNCTIONS = ["test-integration", "process-order", "reserve-item", "nightly-cleanup"]


def scraped(prom: Prometheus, jobs: tuple[str, ...] = ("app", "inngest")) -> None:
    """Wait for a complete scrape of every job's target that started after this call (counters are final)."""
    since = time.time()

    def fresh() -> bool:
        targets = {t["labels"]["job"]: t for t in prom.targets()}
        return all(targets[job]["health"] == "up" and _epoch(targets[job]["lastScrape"]) > since + 0.05 for job in jobs)

    prom.wait(fresh, 15, f"a scrape of {jobs} after the workload")


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def test_scrape_config_targets_and_http_counters(
    prometheus_factory: Callable[[], Prometheus], stack: tuple[StandInProcess, AppProcess]
) -> None:
    standin, app = stack
    prom = start_prometheus(prometheus_factory, app, standin)
    wait_all_up(prom, {"app", "inngest", "prometheus"})

    n = 25
    for _ in range(n):
        assert app.http.get("/healthz").status_code == 200
    scraped(prom)

    assert prom.values('up{job="app"}', "job") == {"app": 1.0}
    assert prom.scalar('app_inngest_registered_functions{job="app"}') == len(FUNCTIONS)
    build = prom.query('app_build_info{job="app"}')
    assert [(r["metric"]["mode"], float(r["value"][1])) for r in build] == [("self-hosted", 1.0)]
    assert prom.scalar('sum(http_requests_total{job="app",handler="/healthz",method="GET",status="200"})') == n
    # The app synced itself at start: the success timestamp is recent and the sync counter says ok.
    assert (prom.scalar('time() - app_inngest_last_sync_success_timestamp_seconds{job="app"}') or 1e9) < 120
    assert prom.scalar('sum(app_inngest_sync_attempts_total{job="app",outcome="ok"})') == len(
        [r for r in standin.state()["registrations"] if r["ok"]]
    )


def _stand_in_expectations(standin: StandInProcess) -> dict[str, Any]:
    """What the stand-in observed, keyed by the app's local function id (the metric label)."""
    stats = standin.stats()
    per_fn: dict[str, Counter[str]] = {}
    for fn_id, counters in stats["functions"].items():
        per_fn[fn_id.removeprefix(APP_ID + "-")] = Counter(counters)
    runs: dict[str, Counter[str]] = {}
    for run in standin.runs():
        runs.setdefault(run["function_id"].removeprefix(APP_ID + "-"), Counter())[run["status"]] += 1
    events = Counter(e["name"] for e in standin.events())
    return {"stats": stats, "per_fn": per_fn, "runs": runs, "events": events}


@pytest.mark.slow
def test_workload_counters_rules_and_dashboards(
    prometheus_factory: Callable[[], Prometheus],
    standin_factory: Callable[..., StandInProcess],
    app_factory: Callable[..., AppProcess],
) -> None:
    # time_scale 0.001: the 10 min cool-off sleep takes 0.6 s, retries back off in milliseconds.
    standin = standin_factory(time_scale=0.001)
    app = app_factory(standin)
    standin.wait_synced()
    prom = start_prometheus(prometheus_factory, app, standin)
    wait_all_up(prom, {"app", "inngest", "prometheus"})

    # --- the workload, through the app's public event API (so every event the stand-in got was sent by the app)
    posted = Counter[str]()

    def send(events: list[dict[str, Any]]) -> None:
        res = app.http.post("/api/events", json=events)
        assert res.status_code == 200, res.text
        assert len(res.json()["ids"]) == len(events)
        posted["requests"] += 1
        posted["events"] += len(events)

    messages = 12
    orders = 6
    send([{"name": "test/integration", "data": {"message": f"hello {i}"}} for i in range(messages)])
    send(
        [
            {
                "name": "shop/order.created",
                "data": {
                    "order_id": f"o{i}",
                    "customer_id": f"c{i % 3}",
                    "items": [{"sku": "apple", "qty": 1}, {"sku": "pear", "qty": 2}],
                    "carrier_failures": 1 if i == 0 else 0,  # one retried step (StepError, then ok)
                },
            }
            for i in range(orders)
        ]
    )
    # An invalid order: NonRetriableError in its first step -> a permanent failure, no retries.
    send([{"name": "shop/order.created", "data": {"order_id": "bad", "customer_id": "c9", "items": []}}])
    # A test/integration event without a message: NonRetriableError at function level.
    send([{"name": "test/integration", "data": {}}])
    standin.fire_cron(f"{APP_ID}-nightly-cleanup")

    # Payments only once every order waits for one (a payment before the wait would not match).
    wait_until(lambda: standin.state()["pauses"] >= orders, 60, what=f"{orders} orders waiting for payment")
    for i in range(orders):
        send([{"name": "shop/payment.confirmed", "data": {"order_id": f"o{i}", "amount": 10 + i}}])

    total_runs = messages + 1 + orders + 1 + orders * 2 + 1  # + fan-out reservations + cron
    runs = standin.wait_runs(total_runs, timeout=90)
    assert len(runs) == total_runs, [r["function_id"] for r in runs]
    seen = _stand_in_expectations(standin)
    assert seen["runs"]["test-integration"] == Counter({"Completed": messages, "Failed": 1}), seen["runs"]
    assert seen["runs"]["process-order"] == Counter({"Completed": orders, "Failed": 1}), seen["runs"]
    assert seen["runs"]["reserve-item"] == Counter({"Completed": orders * 2}), seen["runs"]
    assert seen["runs"]["nightly-cleanup"] == Counter({"Completed": 1}), seen["runs"]

    scraped(prom)
    compared = _compare_counters(prom, seen, posted)

    # The server-side run counters (the stand-in's /metrics, scraped by the `inngest` job) agree too.
    assert prom.scalar('sum(inngest_function_run_scheduled_total{job="inngest"})') == total_runs
    assert prom.scalar('sum(inngest_function_run_ended_total{job="inngest"})') == total_runs
    compared["runs"] = total_runs
    scraped(prom)  # a second sample of every final counter: rate() over them is defined
    compared["rules_ok"] = _check_rules(prom)
    compared["dashboards"] = _check_dashboards(prom)

    # The app goes away: `up` drops to 0 and AppDown becomes pending (it fires after its `for: 1m`).
    app.stop()
    prom.wait(lambda: prom.scalar('up{job="app"}') == 0, 15, 'up{job="app"} == 0')

    def app_down_pending() -> bool:
        return any(
            a["labels"]["alertname"] == "AppDown" and a["state"] == "pending" for a in prom.api("alerts")["alerts"]
        )

    prom.wait(app_down_pending, 15, "AppDown pending")
    print(f"compared with the stand-in: {compared}")


def _compare_counters(prom: Prometheus, seen: dict[str, Any], posted: Counter[str]) -> dict[str, Any]:
    per_fn: dict[str, Counter[str]] = seen["per_fn"]
    stats = seen["stats"]["counters"]

    # Invocations: one per SDK request the stand-in made, per function; completed == runs that finished.
    invocations = prom.values('sum by (function) (app_inngest_function_invocations_total{job="app"})', "function")
    calls = {fn: sum(v for k, v in c.items() if k.startswith("status_")) for fn, c in per_fn.items()}
    assert invocations == calls, f"invocations per function: prometheus {invocations} != stand-in calls {calls}"
    completed = prom.values(
        'sum by (function) (app_inngest_function_invocations_total{job="app",outcome="completed"})', "function"
    )
    finished = {fn: float(c["Completed"]) for fn, c in seen["runs"].items() if c["Completed"]}
    assert completed == finished, f"completed: prometheus {completed} != stand-in runs {finished}"

    # Steps: one per opcode the app answered with, per function and op.
    steps = {
        (r["metric"]["function"], r["metric"]["op"]): float(r["value"][1])
        for r in prom.query('sum by (function, op) (app_inngest_steps_total{job="app"})')
    }
    ops = {
        (fn, k.removeprefix("op_")): float(v) for fn, c in per_fn.items() for k, v in c.items() if k.startswith("op_")
    }
    assert steps == ops, f"steps: prometheus {steps} != stand-in ops {ops}"

    # Failures: the retried ship step and the two non-retriable errors.
    failures = prom.values(
        'sum by (outcome) (app_inngest_function_invocations_total{job="app",outcome=~".*failure"})', "outcome"
    )
    assert failures.get("retriable_failure", 0) >= 1 and failures.get("permanent_failure", 0) >= 2, failures

    # Events: every event the stand-in got from outside came from the app (test sends + fan-out); the
    # server's own `inngest/*` events (function.failed, scheduled.timer) are not sends.
    sent_ok = prom.scalar('sum(app_inngest_events_sent_total{job="app",outcome="ok"})')
    received = sum(n for name, n in seen["events"].items() if not name.startswith("inngest/"))
    assert sent_ok == received, f"events sent ok {sent_ok} != received {received}: {seen['events']}, posted {posted}"
    fan_out = sent_ok - posted["events"] if sent_ok is not None else None
    assert fan_out == 12, f"fan-out events: {fan_out} (expected 2 items x 6 orders)"
    assert prom.scalar('sum(app_inngest_events_sent_total{job="app",outcome!="ok"})') in (None, 0.0)
    assert prom.scalar('sum(http_requests_total{job="app",handler="/api/events",status="200"})') == posted["requests"]

    # Every SDK call the stand-in made was one POST on the serve path.
    serve_posts = prom.scalar('sum(http_requests_total{job="app",handler="/api/inngest",method="POST"})')
    assert serve_posts == stats["sdk_requests"], (
        f"serve POSTs {serve_posts} != stand-in requests {stats['sdk_requests']}"
    )
    return {
        "invocations": invocations,
        "completed": completed,
        "steps": len(steps),
        "step_executions": sum(steps.values()),
        "failures": failures,
        "events_sent_ok": sent_ok,
        "sdk_requests": serve_posts,
    }


def _check_rules(prom: Prometheus) -> int:
    """Every rule of the repo's rule files is loaded, evaluated at least once, healthy, without error."""

    def evaluated() -> list[dict[str, Any]]:
        groups = prom.rule_groups()
        done = all(r.get("lastEvaluation", "0001").startswith("20") for g in groups for r in g["rules"])
        return groups if groups and done else []

    groups = prom.wait(evaluated, 15, "every rule evaluated once")
    rules = [r for g in groups for r in g["rules"]]
    assert rules, "no rules loaded from the repo's rule_files"
    bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok" or r.get("lastError")]
    assert not bad, f"unhealthy rules: {bad}"
    # The app is up and synced: neither of these may be active.
    active = {r["name"]: r.get("state") for r in rules if r.get("type") == "alerting" and r.get("state") != "inactive"}
    assert "AppDown" not in active and "InngestAppNeverSynced" not in active, active
    return len(rules)


def _check_dashboards(prom: Prometheus) -> dict[str, Any]:
    """Every dashboard query parses and runs; a query on metrics the app exports must return data."""
    queries = dashboard_queries()
    assert queries, "no dashboard queries found"
    names = prom.metric_names()
    errors, empty, absent = [], [], []
    for title, expr in queries:
        promql = grafana_to_promql(expr)
        try:
            result = prom.query(promql)
        except PromQLError as exc:
            errors.append(f"{title}: {exc}")
            continue
        if not result:
            referenced = set(re.findall(r"\b((?:app|http|inngest)_[a-z0-9_]+)", promql))
            missing = {m for m in referenced if m not in names and not any(n.startswith(m) for n in names)}
            if not missing or any(m.startswith(("app_", "http_")) for m in missing):
                empty.append(f"{title}: {promql} (missing series: {sorted(missing)})")
            else:  # a server metric the stand-in does not export
                absent.append(f"{title} ({', '.join(sorted(missing))})")
    assert not errors, "dashboard queries that fail:\n" + "\n".join(errors)
    assert not empty, "dashboard queries without data although the app exports their metrics:\n" + "\n".join(empty)
    return {"queries": len(queries), "no_server_metric": absent}


def test_derived_config_keeps_jobs_and_rules(tmp_path: Any) -> None:
    """The derivation itself: same jobs, rule files absolute, every target on loopback."""
    hosts = {
        "app:9000": "127.0.0.1:1",
        "inngest": "127.0.0.1:2",
        "localhost:9090": "127.0.0.1:3",
        "prometheus": "127.0.0.1:3",
    }
    config = derive_config(COMPOSE_PROMETHEUS, hosts)
    original = yaml.safe_load(COMPOSE_PROMETHEUS.read_text())
    assert [j["job_name"] for j in config["scrape_configs"]] == [j["job_name"] for j in original["scrape_configs"]]
    assert all(p.startswith("/") and p.endswith((".yml", ".yaml")) for p in config["rule_files"])
    assert len(config["rule_files"]) == len(original.get("rule_files", []))
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            assert all(t.startswith("127.0.0.1:") for t in group["targets"]), job
