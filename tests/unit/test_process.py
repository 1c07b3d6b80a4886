"""The app as a real uvicorn process: endpoints, signatures, drain on SIGTERM, workers, sync and doctor."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.standin.protocol import hashed_signing_key
from tests.standin.scripted_registry import FakeRegistry
from tests.support import free_port, wait_until

from .app_process import EVENT_API_AUTH, app_env, metrics, running_app
from .conftest import EVENT_KEY, SIGNING_KEY, fn_url, run_body, signed


def test_self_hosted_process_serves_and_checks_signatures(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = app_env(port, tmp_path)
    with running_app(env, tmp_path / "app.log"):
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}
        # Metrics on their own port only; no schema or its browsers outside dev.
        assert "app_inngest_registered_functions 4.0" in metrics(env)
        for path in ("/metrics", "/openapi.json", "/docs", "/redoc"):
            assert httpx.get(f"{base}{path}").status_code == 404, path
        body = run_body("test/integration", {"message": "Hello"})
        url = base + fn_url("test-integration")
        unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        assert unsigned.status_code == 401
        ok = httpx.post(url, content=body, headers=signed(body))
        assert ok.status_code == 200 and ok.json() == "Hello"
        assert httpx.put(f"{base}/api/inngest").status_code == 401  # an unsigned sync is refused in production
    logs = (tmp_path / "app.log").read_text().splitlines()
    assert logs and all(line.startswith("{") for line in logs), logs[:3]  # JSON lines only


def test_metrics_port_taken_stops_the_start_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = app_env(free_port(), tmp_path, METRICS_PORT=str(busy))
        proc = subprocess.run([sys.executable, "-m", "app"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    (line,) = [json.loads(ln) for ln in (proc.stdout + proc.stderr).splitlines() if "METRICS_PORT" in ln]
    assert line["message"] == f"METRICS_PORT: cannot listen on 127.0.0.1:{busy}: Address already in use"
    assert "Traceback" not in proc.stderr


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (its socket inodes in /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # a descriptor closed since the listing (a connection ending)
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.parametrize("metrics_port", ["free", "0"])
def test_the_process_listens_on_its_port_and_metrics_port_only(tmp_path: Path, metrics_port: str) -> None:
    port = free_port()
    env = app_env(port, tmp_path) if metrics_port == "free" else app_env(port, tmp_path, METRICS_PORT="0")
    with running_app(env, tmp_path / "app.log") as proc:
        listening = _listening_ports(proc.pid)
    expected = {port} if metrics_port == "0" else {port, int(env["METRICS_PORT"])}  # 0: no metrics listener
    assert listening == expected


def test_reload_in_dev_mode_logs_json_from_the_reloader_too(tmp_path: Path) -> None:
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_MODE="dev", INNGEST_BASE_URL="http://127.0.0.1:1")
    # Two processes (reloader, server) start on a possibly busy machine: a longer wait than usual.
    with running_app(env, tmp_path / "app.log", "serve", "--reload", timeout=60):
        # The reloader serves the metrics its server process writes (and every server after a reload).
        assert 'app_build_info{mode="dev"' in metrics(env)
    records = [json.loads(line) for line in (tmp_path / "app.log").read_text().splitlines()]
    # uvicorn's reloader process logs through the app's config too (its own default is text).
    assert any("Started reloader process" in r["message"] for r in records), records


def test_reload_is_refused_outside_dev_mode(tmp_path: Path) -> None:
    env = app_env(free_port(), tmp_path)
    proc = subprocess.run([sys.executable, "-m", "app", "serve", "--reload"], env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "config error: --reload: only for `serve` with INNGEST_MODE=dev"


def test_sigterm_drains_readiness_first_and_finishes_in_flight(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = app_env(port, tmp_path, SHUTDOWN_DRAIN_SECONDS="1.5")
    with running_app(env, tmp_path / "app.log") as proc:
        with httpx.Client(base_url=base) as http:
            proc.send_signal(signal.SIGTERM)
            wait_until(lambda: http.get("/readyz").status_code == 503, 5, what="readiness 503")
            assert http.get("/readyz").json()["status"] == "draining"
            assert http.get("/healthz").status_code == 200  # still alive, still answering during the drain
            body = run_body("test/integration", {"message": "late"})
            late = http.post(fn_url("test-integration"), content=body, headers=signed(body))
            assert late.status_code == 200 and late.json() == "late"
        assert proc.wait(20) in (0, -signal.SIGTERM)


def test_two_workers_aggregate_metrics(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = app_env(port, tmp_path, WEB_CONCURRENCY="2")
    (tmp_path / f"metrics-{port}").mkdir()
    (tmp_path / f"metrics-{port}" / "counter_stale.db").write_bytes(b"junk from a previous run")
    with running_app(env, tmp_path / "app.log"):
        body = run_body("test/integration", {"message": "Hello"})
        for _ in range(40):  # a fresh connection each: they land on both workers
            assert httpx.post(base + fn_url("test-integration"), content=body, headers=signed(body)).status_code == 200
        text = metrics(env)  # the supervisor sums both workers' files
    match = re.search(
        r'app_inngest_function_invocations_total\{function="test-integration",outcome="completed"\} (\S+)', text
    )
    assert match and float(match.group(1)) == 40.0, text[:2000]
    assert "app_inngest_registered_functions 4.0" in text


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry(SIGNING_KEY, EVENT_KEY).start()
    yield fake
    fake.stop()


def _sync(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "sync"], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_sync_ok(tmp_path: Path, registry: FakeRegistry) -> None:
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_BASE_URL=registry.url)
    with running_app(env, tmp_path / "app.log"):
        proc = _sync(env)
        assert proc.returncode == 0, proc.stderr
        assert "sync ok" in proc.stdout
        assert registry.auth_headers[-1] == f"Bearer {hashed_signing_key(SIGNING_KEY)}"
        reg = registry.registrations[-1]
        assert reg["url"] == f"http://127.0.0.1:{port}/api/inngest"  # the serve origin, as configured
        assert {f["id"] for f in reg["functions"]} >= {"fastapi-app-test-integration", "fastapi-app-process-order"}
        text = metrics(env)
        assert 'app_inngest_sync_attempts_total{outcome="ok"} 1.0' in text
        assert "app_inngest_last_sync_success_timestamp_seconds 0.0" not in text


def test_sync_ok_false_exits_non_zero_with_the_servers_reason(tmp_path: Path, registry: FakeRegistry) -> None:
    registry.default = (200, {"ok": False, "error": "function config invalid: bad cron"})
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_BASE_URL=registry.url)
    with running_app(env, tmp_path / "app.log"):
        proc = _sync(env)
    assert proc.returncode == 1
    assert "function config invalid: bad cron" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sync_wrong_key_reports_the_401(tmp_path: Path) -> None:
    """The server refuses another key with `inngest start`'s plain-text 401: one line naming the mismatch and
    its fix, within seconds, without retrying."""
    registry = FakeRegistry(secrets.token_hex(32), EVENT_KEY).start()
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_BASE_URL=registry.url, INNGEST_SYNC_TIMEOUT="60")
    try:
        with running_app(env, tmp_path / "app.log"):
            proc = _sync(env)
    finally:
        registry.stop()
    assert proc.returncode == 1
    assert "signing key mismatch" in proc.stderr and "same signing key" in proc.stderr, proc.stderr
    assert "not valid JSON" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(registry.auth_headers) == 1  # a 401 is not retried


def test_sync_retries_until_the_server_appears(tmp_path: Path) -> None:
    registry = FakeRegistry(SIGNING_KEY, EVENT_KEY)
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_BASE_URL=registry.url, INNGEST_SYNC_TIMEOUT="30")
    with running_app(env, tmp_path / "app.log"):
        timer = threading.Timer(2.0, registry.start)
        timer.start()
        started = time.monotonic()
        try:
            proc = _sync(env)
        finally:
            timer.join()
            registry.stop()
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started >= 2.0
    assert len(registry.registrations) == 1


def test_sync_gives_up_at_the_deadline_when_nothing_answers(tmp_path: Path) -> None:
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_SYNC_TIMEOUT="2")
    proc = _sync(env)  # neither the app nor the server is up
    assert proc.returncode == 1
    assert "unreachable" in proc.stderr and f"127.0.0.1:{port}" in proc.stderr


def test_app_syncs_itself_on_startup_once_the_server_is_up(tmp_path: Path) -> None:
    registry = FakeRegistry(SIGNING_KEY, EVENT_KEY)
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_BASE_URL=registry.url, INNGEST_SYNC_ON_STARTUP="true")
    with running_app(env, tmp_path / "app.log"):
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz").status_code == 200  # ready without the server: no deadlock
        time.sleep(0.5)
        registry.start()
        try:
            wait_until(lambda: 'sync_attempts_total{outcome="ok"}' in metrics(env), 30, what="sync ok")
        finally:
            registry.stop()
        assert registry.registrations[0]["url"] == f"http://127.0.0.1:{port}/api/inngest"


def test_doctor_passes_against_a_healthy_setup(tmp_path: Path, registry: FakeRegistry) -> None:
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_BASE_URL=registry.url)
    with running_app(env, tmp_path / "app.log"):
        proc = subprocess.run(
            [sys.executable, "-m", "app", "doctor"], env=env, capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 6 and all(line.startswith("ok ") for line in lines), lines


def test_doctor_names_each_failure_and_its_fix(tmp_path: Path, registry: FakeRegistry) -> None:
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_BASE_URL=registry.url, INNGEST_EVENT_KEY="wrong")
    proc = subprocess.run([sys.executable, "-m", "app", "doctor"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    out = proc.stdout
    assert "ok   server reachable" in out
    assert "FAIL the server rejected INNGEST_EVENT_KEY -> fix:" in out
    assert "FAIL serve endpoint" in out and "unreachable" in out  # the app is not running


def test_event_api_sends_and_logs_rejections_with_the_servers_message(tmp_path: Path, registry: FakeRegistry) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_app(app_env(port, tmp_path, INNGEST_BASE_URL=registry.url), tmp_path / "ok.log"):
        sent = httpx.post(
            f"{base}/api/events", json=[{"name": "a/b", "data": {"n": 1}}, {"name": "a/c"}], headers=EVENT_API_AUTH
        )
        assert sent.status_code == 200 and sent.json() == {"ids": ["id0", "id1"]}
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_BASE_URL=registry.url, INNGEST_EVENT_KEY="not-the-servers-key")
    with running_app(env, tmp_path / "rejected.log"):
        base = f"http://127.0.0.1:{port}"
        rejected = httpx.post(f"{base}/api/events", json=[{"name": "a/b"}, {"name": "a/c"}], headers=EVENT_API_AUTH)
        assert rejected.status_code == 502
        assert "Event key not found" not in rejected.text  # the upstream's words go to the log only
        wait_until(lambda: "Event key not found" in (tmp_path / "rejected.log").read_text(), 10, what="logged reason")
        text = metrics(env)
        assert 'app_inngest_events_sent_total{outcome="rejected"} 2.0' in text  # both events of the batch
        assert 'app_inngest_events_sent_total{outcome="ok"}' not in text
