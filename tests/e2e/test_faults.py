"""Faults the real server cannot be made to show on cue, so the stand-in plays the server: its call log
proves that SIGTERM drains calls in flight without a reset, and it goes down and comes back at an exact
moment. The app SIGKILLed and SIGTERMed mid-run, on the real server: tests/real/test_faults.py."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.standin.fixtures import AppProcess, StandInProcess, metric_value
from tests.support import wait_until


@pytest.mark.slow
def test_sigterm_drains_calls_in_flight(
    standin_factory: Callable[..., StandInProcess], app_factory: Callable[..., AppProcess]
) -> None:
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


def test_server_down_then_back(
    standin_factory: Callable[..., StandInProcess], app_factory: Callable[..., AppProcess]
) -> None:
    standin = standin_factory()
    app = app_factory(standin)
    standin.wait_synced()
    ok_before = metric_value(app.metrics(), "app_inngest_events_sent_total", outcome="ok")

    standin.close()  # the server goes away
    started = time.monotonic()
    res = app.http.post("/api/events", json={"name": "test/integration", "data": {"message": "lost?"}}, timeout=30)
    assert res.status_code == 503, res.text
    # The app cannot tell a refused connection from a lost answer: it says to retry, with ids for dedup.
    detail = res.json()["detail"]
    assert "unreachable" in detail and "retry" in detail and "id" in detail
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
