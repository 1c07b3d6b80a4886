"""Start order between the real server and the app, both ways, and re-sync after a redeploy.

`inngest start --sdk-url` polls the app until its first successful sync and never again
(inngest/inngest#3791); the app's own sync at start and `python -m app sync` cover every redeploy.
Registration is read back from the server's GraphQL API (the functions it knows)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx

from tests.real.conftest import APP_FNS
from tests.real.redeployed_app import EXTRA_ID
from tests.standin.fixtures import PYTHON, AppProcess, metric_value
from tests.support import free_port, wait_until
from tests.support.inngest import InngestServer

EXTRA = f"fastapi-app-{EXTRA_ID}"


def test_server_first_polls_until_the_app_is_ready(
    server_factory: Callable[..., InngestServer], app_factory: Callable[..., AppProcess]
) -> None:
    """Server up first with `--sdk-url`: it polls every second until the app answers, then syncs it."""
    app_port = free_port()
    server = server_factory(sdk_urls=[f"http://127.0.0.1:{app_port}/api/inngest"], poll_interval=1)
    time.sleep(2)  # two poll intervals against a closed port: nothing registered, the server still healthy
    assert server.functions() == {} and httpx.get(f"{server.url}/health").status_code == 200
    # The app does not sync itself here: the server's poll alone must register it.
    app = app_factory(server, port=app_port, INNGEST_SYNC_ON_STARTUP="false")
    ready_at = time.monotonic()
    server.wait_functions(APP_FNS, timeout=60)
    print(f"\nserver first: synced {time.monotonic() - ready_at:.2f}s after the app was ready")
    puts = wait_until(lambda: app.sync_attempts(), 10, what="the server's PUT seen by the app")
    time.sleep(3)  # three more poll intervals: a synced app is not polled again
    assert app.sync_attempts() == puts == 1


def test_app_first_retries_its_own_sync_until_the_server_appears(
    server_factory: Callable[..., InngestServer], app_factory: Callable[..., AppProcess]
) -> None:
    """App up first: ready without the server, its own sync retries until the server answers."""
    server = server_factory(start=False)
    app = app_factory(server)  # readiness never waits for the server
    wait_until(lambda: app.sync_attempts() >= 2, 30, what="failed sync attempts")
    assert app.readyz() == {"status_code": 200, "status": "ready"}
    assert app.sync_attempts("ok") == 0
    started_wall = time.time()
    server.start()
    healthy_at = time.monotonic()
    server.wait_functions(APP_FNS, timeout=60)
    print(f"\napp first: synced {time.monotonic() - healthy_at:.2f}s after the server was healthy")
    wait_until(lambda: app.sync_attempts("ok"), 10, what="a successful sync in the app's metrics")
    assert metric_value(app.metrics(), "app_inngest_last_sync_success_timestamp_seconds") >= started_wall


def test_redeploy_needs_a_resync_and_gets_one(
    server_factory: Callable[..., InngestServer], app_factory: Callable[..., AppProcess]
) -> None:
    app_port = free_port()
    server = server_factory(sdk_urls=[f"http://127.0.0.1:{app_port}/api/inngest"], poll_interval=1)
    app = app_factory(server, port=app_port, INNGEST_SYNC_ON_STARTUP="false")
    server.wait_functions(APP_FNS)

    # A new build with one more function, without any re-sync: the server keeps the old list.
    app.restart(module="tests.real.redeployed_app")
    time.sleep(3)  # three poll intervals
    assert set(server.functions()) == APP_FNS
    unknown = server.send("deploy/redeployed")
    time.sleep(2)
    assert server.runs_for_event(unknown) == []

    # The fix after every deploy: `python -m app sync` (the job), exit 0 on the server's ok: true.
    sync = subprocess.run(
        [PYTHON, "-m", "app", "sync"], env=app.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert sync.returncode == 0, sync.stderr
    server.wait_functions(APP_FNS | {EXTRA}, timeout=10)
    (run,) = server.wait_run_finished(server.send("deploy/redeployed"), 30)
    assert (run["status"], run["output"]) == ("Completed", "new build")

    # Or the app's own sync at start: roll back to the product build; the extra function goes away.
    app.env["INNGEST_SYNC_ON_STARTUP"] = "true"
    app.restart(module="app")
    server.wait_functions(APP_FNS, timeout=30)
