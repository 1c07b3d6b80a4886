"""Mismatched keys against the real server: its answer to a wrong signing key is a plain-text
`401 Authentication failed` (which the SDK reports as "response is not valid JSON"), to a wrong event
key a JSON 401 "Event key not found". The diagnosis must name the key, come within seconds, and never
retry a 401."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from tests.real.conftest import APP_FNS
from tests.standin.fixtures import PYTHON, AppProcess, metric_value
from tests.support.inngest import InngestServer, new_signing_key

# Far above what a diagnosis needs, far below the 60 s a retrying sync would take.
QUICK = 15


def run_cli(app: AppProcess, command: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(
        [PYTHON, "-m", "app", command], env=app.env, capture_output=True, text=True, timeout=120, check=False
    )
    return proc, time.monotonic() - started


def test_signing_key_mismatch_is_named_by_sync_and_doctor(
    server: InngestServer, app_factory: Callable[..., AppProcess]
) -> None:
    app = app_factory(server, INNGEST_SIGNING_KEY=new_signing_key(), INNGEST_SYNC_TIMEOUT="60")

    sync, took = run_cli(app, "sync")
    assert sync.returncode == 1, sync
    (line,) = sync.stderr.strip().splitlines()
    assert "signing key mismatch" in line and "same signing key" in line and server.url in line, line
    assert took < QUICK, took  # a 401 is final: no retries until the 60 s deadline

    doctor, took = run_cli(app, "doctor")
    assert doctor.returncode == 1
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert failed and all("signing key mismatch" in f and "fix: " in f for f in failed), doctor.stdout
    assert took < QUICK, took

    # The self-sync saw the same answer (its log says why; its metrics count the refusals); the server
    # registered nothing.
    assert app.sync_attempts("rejected") >= 1 and app.sync_attempts("ok") == 0
    assert "signing key mismatch" in app.log_tail(), app.log_tail()
    assert server.functions() == {}


def test_matching_keys_sync_ok_and_doctor_passes(server: InngestServer, app_factory: Callable[..., AppProcess]) -> None:
    """`python -m app sync` exits 0 on the server's real `ok: true`, and the server then has every function."""
    app = app_factory(server, INNGEST_SYNC_ON_STARTUP="false")
    assert server.functions() == {}
    sync, _ = run_cli(app, "sync")
    assert sync.returncode == 0, sync.stderr
    assert sync.stdout.startswith(f"sync ok: {app.serve_url}")
    assert set(server.functions()) == APP_FNS
    doctor, _ = run_cli(app, "doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert all(line.startswith("ok ") for line in doctor.stdout.splitlines()), doctor.stdout


def test_wrong_event_key_is_a_502_naming_the_key(server: InngestServer, app_factory: Callable[..., AppProcess]) -> None:
    app = app_factory(server, INNGEST_EVENT_KEY="0123456789abcdef")
    server.wait_functions(APP_FNS)  # the signing key is right: the app is synced
    started = time.monotonic()
    res = app.http.post("/api/events", json={"name": "test/integration", "data": {"message": "Hello"}}, timeout=60)
    assert res.status_code == 502, res.text
    # The operator's hint names the variable; the server's own words go to the app's log only.
    assert "INNGEST_EVENT_KEY" in res.json()["detail"] and "Event key not found" not in res.text
    assert time.monotonic() - started < QUICK
    # One send, counted once as rejected: the SDK does not retry a 4xx and neither does the app.
    metrics = app.metrics()
    assert metric_value(metrics, "app_inngest_events_sent_total", outcome="rejected") == 1
    assert metric_value(metrics, "app_inngest_events_sent_total", outcome="ok") == 0
