"""Start order between the server and the app, and re-sync after a redeploy (processes, no containers)."""

from __future__ import annotations

import time

from tests.e2e.redeployed_app import EXTRA_ID
from tests.standin.fixtures import AppProcess, StandInProcess, free_port, wait_until

APP_FNS = {"test-integration", "process-order", "reserve-item", "nightly-cleanup"}


def fn_ids(standin: StandInProcess) -> set[str]:
    return {f.removeprefix("fastapi-app-") for f in standin.state()["functions"]}


def test_server_first_polls_until_the_app_is_ready(standin_factory, app_factory, e2e_log_dir) -> None:
    """`inngest start -u URL` up first: it retries the PUT every poll interval, syncs once, then stops."""
    app_port = free_port()
    serve_url = f"http://127.0.0.1:{app_port}/api/inngest"
    standin = standin_factory(sdk_urls=[serve_url], poll_interval=0.2)
    wait_until(lambda: len(standin.state()["puts"]) >= 3, 10, what="PUT retries while the app is down")
    assert not standin.state()["synced"][serve_url]
    # The app does not sync itself here: the server's poll alone must register it.
    app_factory(standin, port=app_port, INNGEST_SYNC_ON_STARTUP="false")
    standin.wait_synced()

    def put_ok() -> dict | None:
        s = standin.state()
        return s if any(p["synced"] for p in s["puts"]) else None

    state = wait_until(put_ok, 10, what="a PUT that synced")
    assert fn_ids(standin) == APP_FNS
    ok_puts = [p for p in state["puts"] if p["synced"]]
    assert len(ok_puts) == 1 and ok_puts[0]["status"] == 200 and ok_puts[0]["sdk"].startswith("inngest-py:")
    assert all(p["status"] is None for p in state["puts"] if not p["synced"])  # refused while down
    assert [r["url"] for r in state["registrations"]] == [serve_url]
    puts = len(state["puts"])
    time.sleep(1.0)  # five poll intervals: a synced app is never pinged again (inngest/inngest#3791)
    assert len(standin.state()["puts"]) == puts


def test_app_first_retries_its_own_sync_until_the_server_appears(standin_factory, app_factory, e2e_log_dir) -> None:
    """App up first (no server yet): ready anyway, its own sync retries until the server answers."""
    server_port = free_port()
    standin = standin_factory(port=server_port, start=False)
    app = app_factory(standin)  # ready without the server: readiness never waits for it
    wait_until(lambda: app.readyz()["sync"]["attempts"] >= 2, 20, what="failed sync attempts")
    ready = app.readyz()
    assert ready["status_code"] == 200 and ready["sync"]["status"] == "failed"
    assert "unreachable" in (ready["sync"]["last_error"] or "") or "reach" in (ready["sync"]["last_error"] or "")
    standin.start()
    standin.wait_synced(timeout=30)
    assert fn_ids(standin) == APP_FNS
    wait_until(lambda: app.readyz()["sync"]["status"] == "ok", 10, what="sync ok in /readyz")
    assert not standin.state()["puts"]  # no --sdk-url: the app's own sync did it


def test_redeploy_with_changed_functions_resyncs(stack: tuple[StandInProcess, AppProcess]) -> None:
    standin, app = stack
    assert fn_ids(standin) == APP_FNS
    first = standin.state()["registrations"]
    app.restart(module="tests.e2e.redeployed_app")  # same URL, new build with one more function
    wait_until(lambda: EXTRA_ID in fn_ids(standin), 20, what="the redeployed function")
    regs = standin.state()["registrations"]
    assert regs[-1]["modified"] is True and len(regs) == len(first) + 1
    event_id = standin.send("e2e/redeployed")
    (run,) = standin.wait_runs(1, function=EXTRA_ID, timeout=20)
    assert run["output"] == "new build" and run["event_id"] == event_id
    app.restart(module="app")  # roll back: the extra function disappears from the server
    wait_until(lambda: fn_ids(standin) == APP_FNS, 20, what="the rolled-back function list")
    app.restart()  # same build again: an identical payload is a no-op
    wait_until(lambda: len(standin.state()["registrations"]) == len(regs) + 2, 20, what="a no-op sync")
    assert standin.state()["registrations"][-1]["modified"] is False
