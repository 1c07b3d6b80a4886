"""Load: 1,000 concurrent runs of a 3-step function (process-order's payment-timeout path: validate,
fan-out, wait) plus their 1,000 fan-out runs, with zero errors and bounded app memory."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.standin.fixtures import AppProcess, StandInProcess, metric_value

RUNS = 1000
MAX_RSS_MIB = 300  # the app idles at ~70 MiB; a leak of ~100 KiB per run would cross this


@pytest.mark.slow
def test_thousand_concurrent_runs(
    standin_factory: Callable[..., StandInProcess], app_factory: Callable[..., AppProcess]
) -> None:
    # 24 h payment timeout -> ~9 s: every run is alive (waiting) at the same time.
    standin: StandInProcess = standin_factory(time_scale=0.0001)
    app: AppProcess = app_factory(standin)
    standin.wait_synced()
    baseline = app.sample_rss()
    started = time.monotonic()
    for chunk in range(0, RUNS, 100):  # through the app's event API, 100 events per request (the cap)
        batch = [
            {
                "name": "shop/order.created",
                "data": {"order_id": f"load-{n}", "customer_id": f"c-{n % 500}", "items": [{"sku": "X"}]},
            }
            for n in range(chunk, chunk + 100)
        ]
        res = app.http.post("/api/events", json=batch, timeout=30)
        assert res.status_code == 200 and len(res.json()["ids"]) == 100

    peak_waiting = peak_running = 0

    def sample() -> None:
        nonlocal peak_waiting, peak_running
        app.sample_rss()
        summary = standin.summary()
        peak_waiting = max(peak_waiting, summary["waits"])
        running = summary["runs"].get("fastapi-app-process-order", {}).get("Running", 0)
        peak_running = max(peak_running, running)

    orders = standin.wait_runs(RUNS, function="fastapi-app-process-order", timeout=240, sample=sample)
    reserves = standin.wait_runs(RUNS, function="fastapi-app-reserve-item", timeout=60, sample=sample)
    elapsed = time.monotonic() - started

    assert {r["status"] for r in orders} == {"Completed"} and {r["status"] for r in reserves} == {"Completed"}
    assert all(r["output"]["status"] == "cancelled" for r in orders)
    assert all(len(r["steps"]) == 3 for r in orders)  # validate-order, reserve-items, wait-for-payment
    counters = standin.stats()["counters"]
    errors = {k: v for k, v in counters.items() if k.startswith("sdk_error_") or k.startswith("sdk_status_5")}
    assert not errors and not counters.get("retries") and not counters.get("duplicate_step_results"), counters
    assert counters.get("sdk_bad_signature", 0) == 0 and counters.get("sdk_missing_header", 0) == 0
    metrics = app.metrics()
    assert metric_value(metrics, "app_inngest_function_invocations_total", outcome="retriable_failure") == 0
    assert metric_value(metrics, "app_inngest_function_invocations_total", outcome="permanent_failure") == 0
    assert metric_value(metrics, "app_inngest_events_sent_total", outcome="ok") == 2 * RUNS
    assert peak_running == RUNS, peak_running  # all the runs were in progress at the same time
    assert peak_waiting >= RUNS // 4, peak_waiting  # and most of them parked in wait_for_event together
    assert app.max_rss_kib < MAX_RSS_MIB * 1024, (baseline, app.max_rss_kib)
    print(
        f"\nload: runs={RUNS}+{RUNS} calls={counters['sdk_requests']} peak_running={peak_running}"
        f" peak_waiting={peak_waiting}"
        f" rss_start={baseline // 1024}MiB max_rss={app.max_rss_kib // 1024}MiB duration={elapsed:.1f}s"
    )
