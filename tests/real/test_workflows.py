"""Every workflow to its real end state, with the real server doing the retries, sleeps, waits, fan-out
and concurrency. Events go through the app's event API; outcomes are read from the server's REST API
(`/v1/events/{id}/runs`, `/v1/runs/{id}`) and GraphQL API (functions, run timing); side effects from the
app's idempotency ledger."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.real.conftest import APP_FNS, ledger
from tests.standin.fixtures import AppProcess, metric_value
from tests.support import wait_until
from tests.support.inngest import ENDED, InngestServer

PAYMENT_TIMEOUT = 20  # seconds (production: 24 h); room to pay o-1 on a busy machine
COOL_OFF = 0.5  # seconds (production: 10 min)


def send(app: AppProcess, name: str, data: dict[str, Any]) -> str:
    res = app.http.post("/api/events", json={"name": name, "data": data})
    assert res.status_code == 200, res.text
    (event_id,) = res.json()["ids"]
    return str(event_id)


def when(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00")


@pytest.fixture
def workflow_stack(server: InngestServer, app_factory: Callable[..., AppProcess]) -> tuple[InngestServer, AppProcess]:
    app = app_factory(server, ORDER_PAYMENT_TIMEOUT=str(PAYMENT_TIMEOUT), ORDER_COOL_OFF=str(COOL_OFF))
    server.wait_functions(APP_FNS)
    return server, app


@pytest.mark.slow
def test_every_workflow_on_the_real_server(workflow_stack: tuple[InngestServer, AppProcess]) -> None:
    server, app = workflow_stack
    order = {"order_id": "o-1", "customer_id": "c-1", "items": [{"sku": "A", "qty": 2}, {"sku": "B"}]}
    paid = send(app, "shop/order.created", {**order, "carrier_failures": 1})
    unpaid = send(app, "shop/order.created", {"order_id": "o-2", "customer_id": "c-2", "items": [{"sku": "C"}]})
    invalid = send(app, "shop/order.created", {"order_id": "o-3", "customer_id": "c-3", "items": []})
    hello = send(app, "test/integration", {"message": "Hello"})

    # A payment only matches a run already waiting for it.
    (o1,) = wait_until(lambda: server.runs_for_event(paid), 30, what="o-1's run")

    def waiting() -> str | None:
        return server.run_steps(o1["run_id"]).get("wait-for-payment", {}).get("status")

    assert wait_until(waiting, 30, interval=0.2, what="o-1 waiting to be paid") == "WAITING"
    stray = send(app, "shop/payment.confirmed", {"order_id": "o-404", "amount": 1})
    send(app, "shop/payment.confirmed", {"order_id": "o-1", "amount": 42})

    ((run,),) = [server.wait_run_finished(hello, 30)]
    assert (run["status"], run["output"]) == ("Completed", "Hello")

    (shipped,) = server.wait_run_finished(paid, 60)
    assert shipped["status"] == "Completed", shipped
    assert shipped["output"] == {"order_id": "o-1", "status": "shipped", "items": 2, "shipment_id": "shp-o-1"}

    (cancelled,) = server.wait_run_finished(unpaid, 60)
    assert cancelled["output"] == {"order_id": "o-2", "status": "cancelled", "reason": "payment timeout"}
    took = (when(cancelled["ended_at"]) - when(cancelled["run_started_at"])).total_seconds()
    assert took >= PAYMENT_TIMEOUT, took  # the shortened timeout, not 24 h and not immediately

    (failed,) = server.wait_run_finished(invalid, 30)
    assert failed["status"] == "Failed" and "has no items" in str(failed["output"]), failed

    def reserved() -> list[dict[str, Any]] | None:
        runs = server.function_runs("fastapi-app-reserve-item")
        return runs if len(runs) == 3 and all(r["status"] == "COMPLETED" for r in runs) else None

    wait_until(reserved, 30, what="three completed fan-out runs (o-1: A, B; o-2: C)")
    assert server.runs_for_event(stray) == []  # nothing listens to a stray payment

    # Exactly once each, although the carrier failed once and the server retried the step.
    assert ledger(app) == {"item.reserved": 3, "payment.captured": 1, "order.shipped": 1, "order.cancelled": 1}
    # The server retried the flaky carrier's step once (attempt 0 failed) and never retried the invalid order.
    steps = server.run_steps(shipped["run_id"])
    assert steps["ship-order"]["status"] == "COMPLETED" and steps["ship-order"]["attempts"] == 1, steps
    assert all(s["attempts"] == 0 for name, s in steps.items() if name != "ship-order"), steps
    invalid_steps = server.run_steps(failed["run_id"])
    assert invalid_steps == {
        "function error": {"name": "function error", "status": "FAILED", "attempts": 0, "stepOp": None}
    }
    assert set(steps) == {
        "validate-order",
        "reserve-items",
        "wait-for-payment",
        "charge-payment",
        "cool-off",
        "ship-order",
        "function success",
    }
    assert all(s["status"] == "COMPLETED" for s in steps.values()), steps
    fan_out = [server.run(r["id"])["output"] for r in server.function_runs("fastapi-app-reserve-item")]
    assert sorted((r["order_id"], r["sku"], r["qty"]) for r in fan_out) == [
        ("o-1", "A", 2),
        ("o-1", "B", 1),
        ("o-2", "C", 1),
    ]

    # The app's metrics agree with what the server recorded, function by function: runs completed and
    # failed, and the steps of every run by kind, with the failed attempts the server retried.
    metrics = app.metrics()
    for fn in ("process-order", "reserve-item", "test-integration"):
        runs = server.function_runs(f"fastapi-app-{fn}")
        spans = [span for r in runs for span in server.run_steps(r["id"]).values()]
        done = Counter(span["stepOp"] for span in spans if span["stepOp"] and span["status"] == "COMPLETED")
        retried = sum(span["attempts"] for span in spans if span["stepOp"] == "RUN")
        for op, server_op, count in (
            ("StepRun", "RUN", done["RUN"]),
            ("Sleep", "SLEEP", done["SLEEP"]),
            ("WaitForEvent", "WAIT_FOR_EVENT", done["WAIT_FOR_EVENT"]),
            ("StepError", "RUN attempts", retried),
        ):
            assert metric_value(metrics, "app_inngest_steps_total", function=fn, op=op) == count, (fn, server_op, spans)
        outcomes = Counter(r["status"] for r in runs)
        invocations = "app_inngest_function_invocations_total"
        assert metric_value(metrics, invocations, function=fn, outcome="completed") == outcomes["COMPLETED"], fn
        assert metric_value(metrics, invocations, function=fn, outcome="permanent_failure") == outcomes["FAILED"], fn
    sent = 6  # o-1, o-2, o-3, hello, the stray payment and o-1's payment, through the app's event API
    assert metric_value(metrics, "http_requests_total", handler="/api/events", method="POST", status="200") == sent
    assert metric_value(metrics, "app_inngest_events_sent_total", outcome="ok") == sent + len(fan_out)


def test_cron_registered_with_its_schedule_and_its_body_runs(real_stack: tuple[InngestServer, AppProcess]) -> None:
    server, _ = real_stack
    cron = server.functions()["fastapi-app-nightly-cleanup"]
    assert cron["triggers"] == [{"type": "CRON", "value": "TZ=UTC 0 3 * * *"}]
    server.invoke("fastapi-app-nightly-cleanup")
    (run,) = wait_until(
        lambda: [r for r in server.function_runs("fastapi-app-nightly-cleanup") if r["status"] in ENDED],
        30,
        what="the invoked cron run",
    )
    assert run["status"] == "COMPLETED" and run["eventName"] == "inngest/function.invoked"
    assert server.run(run["id"])["output"] == {"purged": 0}


def test_per_customer_concurrency_limit_is_registered(real_stack: tuple[InngestServer, AppProcess]) -> None:
    """process-order runs at most two of one customer's orders at a time, as the server has it."""
    server, _ = real_stack
    config = server.functions()["fastapi-app-process-order"]["configuration"]
    assert config["concurrency"] == [{"limit": {"value": 2}, "key": "event.data.customer_id", "scope": "FUNCTION"}]


SIDE_EFFECT_DELAY = 2.0  # seconds each charge-payment and ship-order step lasts (tests.real.slow_effects_app)
EDGE = 0.4  # seconds trimmed off both ends of each step before comparing: a hand-over is not an overlap


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of `(start, end)` intervals that overlap at one instant."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])  # ends sort first
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


@pytest.mark.slow
def test_per_customer_concurrency_limit_in_run_timing(
    server: InngestServer, app_factory: Callable[..., AppProcess]
) -> None:
    """Three orders of c-1 and two of c-2, paid at once: the server runs at most two of c-1's steps at a time
    (the server limits executing steps; a run waiting for payment or sleeping holds no slot), while c-2's
    steps run alongside them. Each step's start and end are the server's own trace times."""
    app = app_factory(
        server,
        module="tests.real.slow_effects_app",
        SIDE_EFFECT_DELAY=str(SIDE_EFFECT_DELAY),
        ORDER_PAYMENT_TIMEOUT=str(PAYMENT_TIMEOUT * 6),
        ORDER_COOL_OFF=str(COOL_OFF),
    )
    server.wait_functions(APP_FNS)
    orders = {"o-a1": "c-1", "o-a2": "c-1", "o-a3": "c-1", "o-b1": "c-2", "o-b2": "c-2"}
    events = {
        order: send(app, "shop/order.created", {"order_id": order, "customer_id": customer, "items": [{"sku": order}]})
        for order, customer in orders.items()
    }

    def all_waiting() -> dict[str, str] | None:
        runs: dict[str, str] = {}
        for order, event in events.items():
            found = server.runs_for_event(event)
            if not found or server.run_steps(found[0]["run_id"]).get("wait-for-payment", {}).get("status") != "WAITING":
                return None
            runs[order] = found[0]["run_id"]
        return runs

    run_ids = wait_until(all_waiting, 90, interval=0.5, what="every order waiting to be paid")
    for order in orders:
        send(app, "shop/payment.confirmed", {"order_id": order, "amount": 1})
    for order, event in events.items():
        (run,) = server.wait_run_finished(event, 120)
        assert run["status"] == "Completed" and run["output"]["status"] == "shipped", (order, run)

    spans: dict[str, list[tuple[float, float]]] = {"c-1": [], "c-2": []}
    for order, customer in orders.items():
        times = server.step_times(run_ids[order])
        for step in ("charge-payment", "ship-order"):
            start, end = (when(stamp).timestamp() for stamp in times[step])
            assert end - start >= SIDE_EFFECT_DELAY, (order, step, times[step])  # the slow step, as the server saw it
            spans[customer].append((start + EDGE, end - EDGE))
    assert most_at_once(spans["c-1"]) == 2, spans  # the limit is reached and never exceeded
    assert most_at_once(spans["c-2"]) <= 2, spans
    assert most_at_once(spans["c-1"] + spans["c-2"]) >= 3, spans  # other customers are not held up
    assert ledger(app) == {"item.reserved": 5, "payment.captured": 5, "order.shipped": 5}
