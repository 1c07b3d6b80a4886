"""Faults: the app SIGKILLed mid-run, SIGTERM with calls in flight, the server down and back."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from typing import Any

import pytest

from tests.standin.fixtures import AppProcess, StandInProcess, metric_value
from tests.support import wait_until

ORDERS = 50


def ledger(app: AppProcess) -> dict[str, int]:
    with sqlite3.connect(app.side_effects_db) as db:
        return dict(db.execute("SELECT kind, count(*) FROM side_effects GROUP BY kind").fetchall())


class PaymentDesk(threading.Thread):
    """Pays every order as soon as its run waits for the payment (as a payment provider would)."""

    def __init__(self, standin: StandInProcess) -> None:
        super().__init__(daemon=True)
        self.standin = standin
        self.paid: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                for wait in self.standin.state()["waits"]:
                    order_id = wait["if"].split('"')[1]  # async.data.order_id == "o-7"
                    if order_id not in self.paid:
                        self.standin.send("shop/payment.confirmed", {"order_id": order_id, "amount": 10})
                        self.paid.add(order_id)
            except Exception:  # noqa: S112 - keep paying; the test asserts on the outcome
                continue


@pytest.mark.slow
def test_sigkill_mid_runs_every_side_effect_exactly_once(standin_factory, app_factory) -> None:
    # Fixed 2 s retry interval (`--retry-interval`): 3 retries outlast an app restart. Cool-off 0.6 s.
    standin = standin_factory(time_scale=0.001, retry_interval=2.0)
    app = app_factory(standin)
    standin.wait_synced()
    orders = [
        {
            "name": "shop/order.created",
            "data": {
                "order_id": f"o-{n}",
                "customer_id": f"c-{n % 10}",
                "items": [{"sku": f"S{n}-{i}"} for i in range(1 + n % 2)],
            },
        }
        for n in range(ORDERS)
    ]
    items = sum(len(o["data"]["items"]) for o in orders)
    desk = PaymentDesk(standin)
    desk.start()
    started = time.monotonic()
    assert app.http.post("/api/events", json=orders).status_code == 200
    kills = 0

    def kill_and_restart(pause: float = 0.3) -> None:
        nonlocal kills
        app.sample_rss()
        app.kill()
        kills += 1
        time.sleep(pause)
        app.start()

    time.sleep(0.3)
    kill_and_restart()  # 1: during validate / fan-out
    wait_until(lambda: len(desk.paid) >= ORDERS // 2, 60, what="half the orders paid")
    kill_and_restart()  # 2: during charge / cool-off
    wait_until(lambda: len(standin.runs("process-order", status="Completed")) >= 10, 60, what="10 shipped")
    kill_and_restart()  # 3: during ship
    runs = standin.wait_runs(ORDERS, function="fastapi-app-process-order", timeout=120, sample=app.sample_rss)
    reserves = standin.wait_runs(items, function="fastapi-app-reserve-item", timeout=60)
    desk.stop.set()
    elapsed = time.monotonic() - started

    assert len(runs) == ORDERS and {r["status"] for r in runs} == {"Completed"}, [
        (r["run_id"], r["status"], r["output"]) for r in runs if r["status"] != "Completed"
    ]
    assert {r["output"]["status"] for r in runs} == {"shipped"}
    assert len(reserves) == items and {r["status"] for r in reserves} == {"Completed"}
    # Every step's result was memoized exactly once per run ...
    for run in runs:
        assert len(run["steps"]) == 6 and all(s["saved"] for s in run["steps"].values())
        assert all(s["reports"] == 1 for s in run["steps"].values() if s["op"] == "StepRun")
    stats = standin.stats()["counters"]
    assert stats.get("duplicate_step_results", 0) == 0
    # ... and every side effect happened exactly once, although the kills cut calls off mid-flight.
    assert ledger(app) == {"item.reserved": items, "payment.captured": ORDERS, "order.shipped": ORDERS}
    cut = sum(v for k, v in stats.items() if k.startswith("sdk_error_"))
    assert kills == 3 and cut > 0
    print(
        f"\nsigkill: runs={ORDERS}+{items} kills={kills} failed_calls={cut} retries={stats.get('retries')}"
        f" max_rss={app.max_rss_kib}KiB duration={elapsed:.1f}s"
    )


@pytest.mark.slow
def test_sigterm_drains_calls_in_flight(standin_factory, app_factory) -> None:
    """SIGTERM: /readyz turns 503 at once, calls in flight and calls during the drain are all answered,
    the listener closes only then; afterwards the server sees refused connections (retried), never a reset:
    during the drain every answer says `Connection: close`, and the drain outlasts the stand-in's 2 s idle
    keep-alive, so no reused connection can race the final close."""
    drain = 3.0
    # A steady stream of calls, four in flight at any time.
    standin = standin_factory(time_scale=0.001, retry_interval=1.0, queue_workers=4)
    app = app_factory(standin, SHUTDOWN_DRAIN_SECONDS=str(drain))
    standin.wait_synced()
    total = 500
    standin.send_many([{"name": "test/integration", "data": {"message": f"m{n}"}} for n in range(total)])
    wait_until(lambda: standin.stats()["counters"].get("sdk_status_200", 0) >= 50, 20, what="calls flowing")

    readiness: list[tuple[float, Any]] = []
    app.signal(signal.SIGTERM)
    sigterm_at = time.time()
    while app.alive():
        try:
            res = app.http.get("/readyz", timeout=1)
            readiness.append((time.time(), (res.status_code, res.json()["status"])))
        except Exception as exc:
            readiness.append((time.time(), type(exc).__name__))
        time.sleep(0.05)
    exited_at = time.time()
    assert app.proc is not None and app.proc.returncode in (0, -signal.SIGTERM), app.log_tail()

    answers = [r for _, r in readiness if isinstance(r, tuple)]
    assert answers and all(a == (503, "draining") for a in answers), readiness[:5]
    assert max(t for t, r in readiness if isinstance(r, tuple)) - sigterm_at >= drain - 0.5, [
        (round(t - sigterm_at, 2), r) for t, r in readiness
    ]
    assert exited_at - sigterm_at >= drain

    calls = standin.calls()
    in_flight = [c for c in calls if c["start"] < sigterm_at < c["end"]]
    during = [c for c in calls if sigterm_at <= c["start"] <= sigterm_at + drain - 0.25]
    assert all(c["outcome"] == "200" for c in in_flight + during), [
        c for c in in_flight + during if c["outcome"] != "200"
    ]
    assert len(during) >= 20  # the drain really served traffic
    failed = [c for c in calls if c["outcome"] != "200"]
    resets = [c for c in failed if c["outcome"] != "connect"]
    assert resets == [], resets
    print(
        f"\nsigterm: in_flight={len(in_flight)} answered_during_drain={len(during)} failed_after={len(failed)}"
        f" resets={len(resets)} exit_after={exited_at - sigterm_at:.2f}s"
    )

    app.start()  # everything cut off is retried by the server: nothing lost, nothing doubled
    runs = standin.wait_runs(total, function="fastapi-app-test-integration", timeout=90)
    assert len(runs) == total and {r["status"] for r in runs} == {"Completed"}


def test_server_down_then_back(standin_factory, app_factory) -> None:
    standin = standin_factory()
    app = app_factory(standin)
    standin.wait_synced()
    ok_before = metric_value(app.metrics(), "app_inngest_events_sent_total", outcome="ok")

    standin.close()  # the server goes away
    started = time.monotonic()
    res = app.http.post("/api/events", json={"name": "test/integration", "data": {"message": "lost?"}}, timeout=30)
    assert res.status_code == 503, res.text
    assert "unreachable" in res.json()["detail"] and "nothing was sent" in res.json()["detail"]
    assert res.headers.get("retry-after")
    assert time.monotonic() - started < 15
    metrics = app.metrics()
    assert metric_value(metrics, "app_inngest_events_sent_total", outcome="ok") == ok_before
    assert metric_value(metrics, "app_inngest_events_sent_total", outcome="unreachable") == 1
    assert app.readyz()["status_code"] == 200  # readiness does not depend on the server

    # The server is back on the same address. This stand-in keeps no state across restarts (the real
    # one has its database), so it is started with the app's URL and re-syncs it like `-u` does.
    back = standin_factory(
        port=standin.port, signing_key=standin.signing_key, event_key=standin.event_key, sdk_urls=[app.serve_url]
    )
    back.wait_synced()
    res = app.http.post("/api/events", json={"name": "test/integration", "data": {"message": "Hello again"}})
    assert res.status_code == 200
    (run,) = back.wait_runs(1, function="fastapi-app-test-integration", timeout=20)
    assert run["output"] == "Hello again"
    assert [e["data"]["message"] for e in back.events("test/integration")] == ["Hello again"]  # no late replay
    assert metric_value(app.metrics(), "app_inngest_events_sent_total", outcome="ok") == ok_before + 1
