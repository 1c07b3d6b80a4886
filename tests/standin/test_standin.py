"""The stand-in drives a real SDK app (a minimal sample, not the product) through every opcode."""

from __future__ import annotations

import http.server
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.standin.fixtures import PYTHON, AppProcess, StandInProcess, _Process
from tests.support import ROOT, free_port, wait_until


def start_sample(log_dir: Path, standin: StandInProcess, port: int) -> tuple[_Process, Path]:
    """The sample SDK app under uvicorn, configured like the product (production mode, signed)."""
    app = _Process(log_dir)
    effects = log_dir / "effects.txt"
    env = {
        **os.environ,
        "INNGEST_SIGNING_KEY": standin.signing_key,
        "INNGEST_EVENT_KEY": standin.event_key,
        "INNGEST_BASE_URL": standin.url,
        "INNGEST_SERVE_ORIGIN": f"http://127.0.0.1:{port}",
        "SAMPLE_EFFECTS_FILE": str(effects),
    }
    env.pop("INNGEST_DEV", None)
    app._spawn(
        [PYTHON, "-m", "uvicorn", "tests.standin.sample_app:app", "--port", str(port), "--log-level", "warning"], env
    )
    return app, effects


def test_sync_poll_and_every_opcode(e2e_log_dir: Path, standin_factory: Callable[..., StandInProcess]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/inngest"
    standin = standin_factory(sdk_urls=[url], time_scale=0.001, poll_interval=0.2)
    # The app is not up yet: the server keeps polling and records the failures.
    wait_until(lambda: len(standin.state()["puts"]) >= 2, 10, what="PUT retries")
    assert all(p["status"] is None for p in standin.state()["puts"])
    app, effects = start_sample(e2e_log_dir, standin, port)
    try:
        state = standin.wait_synced()
        assert state["synced"] == {url: True}
        assert "sample-steps" in state["functions"]
        # The register call lands before the PUT that caused it has answered: wait for that answer.
        wait_until(lambda: any(p["status"] == 200 for p in standin.state()["puts"]), 10, what="PUT answered")
        puts = len(standin.state()["puts"])
        # Never polled again once synced (inngest/inngest#3791).
        time.sleep(0.8)
        assert len(standin.state()["puts"]) == puts

        standin.send("sample/steps")
        standin.send("sample/sleep")
        wait_id = standin.send("sample/wait", {"key": "k1"})
        standin.send("sample/wait", {"key": "never"})
        standin.send("sample/flaky", {"fail_times": 1})
        standin.send("sample/flaky", {"fail_times": 5})
        standin.send("sample/fatal")
        standin.send("sample/fanout")
        wait_until(lambda: standin.state()["pauses"] >= 2, 10, what="both pauses")
        standin.send("sample/reply", {"key": "k1", "v": 42})
        standin.fire_cron("nightly")
        runs = standin.wait_runs(12, timeout=60)
        by_fn: dict[str, list[dict[str, Any]]] = {}
        for r in runs:
            by_fn.setdefault(r["function_id"].removeprefix("sample-"), []).append(r)

        assert [r["output"] for r in by_fn["steps"]] == [6]
        assert all(s["reports"] == 1 and s["saved"] for s in by_fn["steps"][0]["steps"].values())
        assert len(effects.read_text().splitlines()) == 3  # each step ran exactly once
        assert by_fn["sleepy"][0]["output"] == "rested"
        waits = {r["event_id"]: r["output"] for r in by_fn["waiter"]}
        assert sorted(waits.values(), key=str) == [None, {"key": "k1", "v": 42}]
        assert {r["event_id"] for r in standin.runs_for_event(wait_id)} == {wait_id}
        flaky = sorted(by_fn["flaky"], key=lambda r: r["status"])
        assert flaky[0]["status"] == "Completed" and flaky[0]["output"] == "ok after 1"
        assert flaky[1]["status"] == "Failed"  # 3 attempts (retries=2) all failed
        assert next(iter(flaky[1]["steps"].values()))["errors"] == 2
        assert by_fn["fatal"][0]["status"] == "Failed" and by_fn["fatal"][0]["sdk_calls"] == 1
        assert sorted(r["output"] for r in by_fn["child"]) == [0, 10, 20]
        assert len(by_fn["fanout"][0]["output"]) == 3
        assert by_fn["nightly"][0]["output"] == "inngest/scheduled.timer"
        stats = standin.stats()["counters"]
        assert stats.get("sdk_bad_signature", 0) == 0 and stats.get("sdk_missing_header", 0) == 0
        assert stats.get("duplicate_step_results", 0) == 0
    finally:
        app.stop()


def test_register_and_event_auth(standin: StandInProcess) -> None:
    res = standin.http.post("/fn/register", json={"appname": "x", "url": "http://x", "functions": []})
    assert (res.status_code, res.text, res.headers["content-type"]) == (
        401,
        "Authentication failed\n",
        "text/plain; charset=utf-8",
    )
    assert standin.http.post("/e/wrong-key", json={"name": "a"}).status_code == 401
    assert standin.http.post(f"/e/{standin.event_key}", content=b"{").status_code == 400
    assert standin.http.post(f"/e/{standin.event_key}", json={"data": {}}).status_code == 400
    ok = standin.http.post(f"/e/{standin.event_key}", json=[{"name": "a"}, {"name": "b"}]).json()
    assert ok["status"] == 200 and len(ok["ids"]) == 2
    from inngest._internal import transforms

    bearer = {"Authorization": f"Bearer {transforms.hash_signing_key(standin.signing_key)}"}
    body = {
        "appname": "x",
        "url": "http://127.0.0.1:1/api/inngest",
        "functions": [
            {
                "id": "x-f",
                "triggers": [{"event": "a"}],
                "steps": {
                    "step": {
                        "id": "step",
                        "name": "step",
                        "runtime": {"type": "http", "url": "http://127.0.0.1:1/api/inngest?fnId=x-f&stepId=step"},
                    }
                },
            }
        ],
    }
    first = standin.http.post("/fn/register", json=body, headers=bearer).json()
    again = standin.http.post("/fn/register", json=body, headers=bearer).json()
    assert first["ok"] and first["modified"] and again["ok"] and not again["modified"]
    assert first["app_id"] == again["app_id"]
    assert standin.http.get(f"/v1/events/{ok['ids'][0]}/runs").status_code == 401
    # The key probe the app's sync and doctor use, answered as `inngest start` answers it.
    for headers in ({}, {"Authorization": "Bearer signkey-prod-00"}):
        refused = standin.http.get("/dev", headers=headers)
        assert (refused.status_code, refused.text) == (401, "Authentication failed\n")
    past_the_check = standin.http.get("/dev", headers=bearer)
    assert (past_the_check.status_code, past_the_check.text) == (404, "404 page not found\n")
    assert standin.http.get(f"/v1/events/{ok['ids'][0]}/runs", headers=bearer).json()["data"] == []
    assert httpx.get(standin.url + "/health").json() == {"status": 200, "message": "OK"}


def test_cli_refuses_what_inngest_start_refuses() -> None:
    """cmd/start: a prefixed (non-hex) signing key or a missing event key stops the server at boot."""
    import subprocess

    for args in (["--signing-key", "signkey-prod-abcd", "--event-key", "k"], ["--signing-key", "abcd"]):
        res = subprocess.run([PYTHON, "-m", "tests.standin", *args], capture_output=True, text=True, timeout=30)
        assert res.returncode == 2, res.stderr


def test_runtime_needs_only_starlette_and_uvicorn() -> None:
    """The image built from tests/standin installs starlette and uvicorn only."""
    import subprocess

    code = "import sys, tests.standin.__main__; print(sorted({'httpx', 'pytest', 'inngest'} & set(sys.modules)))"
    res = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr


class _Impostor(http.server.BaseHTTPRequestHandler):
    """Answers like a proxy or a wrong app would: no X-Inngest-Sdk, or a bad signature."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'"done"'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if "sdk" in self.path:
            self.send_header("X-Inngest-Sdk", "inngest-py:v0.5.19")
            self.send_header("X-Inngest-Signature", "t=1&s=00")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_answers_not_from_the_sdk_are_failures(standin: StandInProcess) -> None:
    """httpdriver.go: a 200 without X-Inngest-Sdk is ErrNotSDK (retried, never "completed"); the stand-in
    also refuses an SDK answer whose signature does not verify."""
    from inngest._internal import transforms

    impostor = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{impostor.server_address[1]}"
    try:
        functions = [
            {
                "id": f"x-{kind}",
                "triggers": [{"event": f"x/{kind}"}],
                "steps": {
                    "step": {
                        "id": "step",
                        "name": "step",
                        "retries": {"attempts": 1},
                        "runtime": {"type": "http", "url": f"{base}/{kind}?fnId=x-{kind}&stepId=step"},
                    }
                },
            }
            for kind in ("plain", "sdk")
        ]
        bearer = {"Authorization": f"Bearer {transforms.hash_signing_key(standin.signing_key)}"}
        body = {"appname": "x", "url": f"{base}/plain", "functions": functions}
        assert standin.http.post("/fn/register", json=body, headers=bearer).json()["ok"]
        standin.send("x/plain")
        standin.send("x/sdk")
        runs = standin.wait_runs(2, timeout=20)
        assert {r["status"] for r in runs} == {"Failed"} and all(r["sdk_calls"] == 2 for r in runs)
        counters = standin.stats()["counters"]
        assert counters["sdk_missing_header"] == 2 and counters["sdk_bad_signature"] == 2
    finally:
        impostor.shutdown()


def test_a_wrong_signing_key_gets_the_real_servers_diagnosis(
    standin: StandInProcess, app_factory: Callable[..., AppProcess]
) -> None:
    """Against the stand-in as against `inngest start` (tests/real/test_keys.py): the plain-text 401 on
    /fn/register and on the /dev key probe, so sync and doctor name the mismatch instead of an outage or
    "keys accepted"."""
    app = app_factory(standin, INNGEST_SIGNING_KEY=secrets.token_hex(32), INNGEST_SYNC_TIMEOUT="60")
    sync = subprocess.run([PYTHON, "-m", "app", "sync"], env=app.env, capture_output=True, text=True, timeout=120)
    assert sync.returncode == 1, sync
    (line,) = sync.stderr.strip().splitlines()
    assert "signing key mismatch" in line and "same signing key" in line and standin.url in line, line
    doctor = subprocess.run([PYTHON, "-m", "app", "doctor"], env=app.env, capture_output=True, text=True, timeout=120)
    assert doctor.returncode == 1
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert failed and all("signing key mismatch" in f and "fix: " in f for f in failed), doctor.stdout
    assert "keys accepted" not in doctor.stdout
