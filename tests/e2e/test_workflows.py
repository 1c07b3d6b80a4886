"""Every example workflow runs to completion through the app's event API, with the expected output and
the app's metrics agreeing with what the server observed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from tests.standin.fixtures import AppProcess, StandInProcess, metric_value
from tests.support import wait_until

# 24 h payment timeout -> ~4 s, 10 min cool-off -> 30 ms, retry backoff (15 s + jitter) -> ~1-2 ms.
TIME_SCALE = 0.00005


@pytest.fixture
def workflow_stack(standin_factory, app_factory) -> tuple[StandInProcess, AppProcess]:
    standin = standin_factory(time_scale=TIME_SCALE)
    app = app_factory(standin)
    standin.wait_synced()
    return standin, app


def send(app: AppProcess, name: str, data: dict[str, Any], **extra: Any) -> str:
    res = app.http.post("/api/events", json={"name": name, "data": data, **extra})
    assert res.status_code == 200, res.text
    (event_id,) = res.json()["ids"]
    return str(event_id)


def ledger(app: AppProcess) -> dict[str, int]:
    with sqlite3.connect(app.side_effects_db) as db:
        return dict(db.execute("SELECT kind, count(*) FROM side_effects GROUP BY kind").fetchall())


def run_of(standin: StandInProcess, event_id: str) -> Callable[[], dict[str, Any] | None]:
    def get() -> dict[str, Any] | None:
        runs = standin.runs_for_event(event_id)
        return runs[0] if runs and runs[0]["status"] != "Running" else None

    return get


def test_every_workflow(workflow_stack: tuple[StandInProcess, AppProcess]) -> None:
    standin, app = workflow_stack

    # test/integration -> the message.
    hello = send(app, "test/integration", {"message": "Hello"})

    # process-order, happy path: fan-out, payment matched by order id, a flaky carrier retried once.
    order = {
        "order_id": "o-1",
        "customer_id": "c-1",
        "items": [{"sku": "A", "qty": 2}, {"sku": "B"}],
        "carrier_failures": 1,
    }
    paid = send(app, "shop/order.created", order)
    # process-order without payment: the wait times out and the order is cancelled.
    unpaid = send(app, "shop/order.created", {"order_id": "o-2", "customer_id": "c-1", "items": [{"sku": "C"}]})
    # process-order, invalid: NonRetriableError, one call, no retries, function.failed emitted.
    invalid = send(app, "shop/order.created", {"order_id": "o-3", "items": []})

    # The payment must arrive after the run waits for it (pauses only match later events).
    wait_until(lambda: len(standin.state()["waits"]) >= 2, 20, what="both orders waiting for payment")
    wrong = send(app, "shop/payment.confirmed", {"order_id": "o-404", "amount": 1})
    send(app, "shop/payment.confirmed", {"order_id": "o-1", "amount": 42})
    cron_run = standin.fire_cron("nightly-cleanup")

    assert wait_until(run_of(standin, hello), 20)["output"] == "Hello"

    done = wait_until(run_of(standin, paid), 30, what="paid order")
    assert done["status"] == "Completed", done
    assert done["output"] == {"order_id": "o-1", "status": "shipped", "items": 2, "shipment_id": "shp-o-1"}
    steps = {s["name"]: s for s in done["steps"].values()}
    assert set(steps) == {
        "validate-order",
        "reserve-items",
        "wait-for-payment",
        "charge-payment",
        "cool-off",
        "ship-order",
    }
    assert steps["ship-order"]["errors"] == 1  # one StepError, retried with attempt + 1
    assert all(s["saved"] for s in steps.values())

    cancelled = wait_until(run_of(standin, unpaid), 30, what="unpaid order timing out")
    assert cancelled["output"] == {"order_id": "o-2", "status": "cancelled", "reason": "payment timeout"}

    failed = wait_until(run_of(standin, invalid), 20, what="invalid order")
    assert failed["status"] == "Failed" and failed["sdk_calls"] == 1
    assert "has no items" in str(failed["output"])
    assert [e["data"]["run_id"] for e in standin.events("inngest/function.failed")] == [failed["run_id"]]

    reserves = standin.wait_runs(3, function="fastapi-app-reserve-item", timeout=20)  # o-1 x2, o-2 x1
    assert sorted((r["output"]["order_id"], r["output"]["sku"]) for r in reserves) == [
        ("o-1", "A"),
        ("o-1", "B"),
        ("o-2", "C"),
    ]
    assert {r["status"] for r in reserves} == {"Completed"}
    assert standin.runs_for_event(wrong) == []  # nothing listens to a stray payment

    cron = wait_until(lambda: (r := standin.run(cron_run))["status"] != "Running" and r, 20)
    assert cron["output"] == {"purged": 0}

    # Each side effect exactly once: ledger rows per kind equal the business outcome.
    assert ledger(app) == {"item.reserved": 3, "payment.captured": 1, "order.shipped": 1, "order.cancelled": 1}
    assert standin.stats()["counters"].get("duplicate_step_results", 0) == 0

    # The app's metrics agree with what the server observed, function by function.
    observed = standin.stats()["functions"]
    metrics = app.metrics()
    for fn_id, seen in observed.items():
        fn = fn_id.removeprefix("fastapi-app-")
        completed = metric_value(metrics, "app_inngest_function_invocations_total", function=fn, outcome="completed")
        assert completed == seen.get("status_200", 0), (fn, seen)
        for op in ("StepRun", "Sleep", "WaitForEvent", "StepError"):
            steps_metric = metric_value(metrics, "app_inngest_steps_total", function=fn, op=op)
            assert steps_metric == seen.get(f"op_{op}", 0), (fn, op, seen)
    assert (
        metric_value(
            metrics, "app_inngest_function_invocations_total", function="process-order", outcome="permanent_failure"
        )
        == 1
    )
    sent = metric_value(metrics, "app_inngest_events_sent_total", outcome="ok")
    assert sent == 6 + 3  # six through /api/events, three by the reserve-items fan-out
    assert metric_value(metrics, "http_requests_total", handler="/api/events", method="POST", status="200") == 6
