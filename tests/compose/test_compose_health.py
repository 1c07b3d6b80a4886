"""The health checks of the compose file and the Dockerfile, executed for real against the app.

The app runs as a process (`python -m app`) with the environment compose gives it, pointed at
loopback: the checks must fail before it is ready and while it drains after SIGTERM, and pass
in between. The commands run with the venv's python, as PATH=/opt/venv/bin:... does in the image.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.compose.compose_support import container_env
from tests.support import free_port
from tests.support.process import clean_env

pytest.importorskip("app.healthcheck", reason="the app package is not installed (make venv)")

DRAIN = 3.0


def check_commands(rendered: dict[str, Any], dockerfile_healthcheck: list[str]) -> dict[str, list[str]]:
    test = rendered["base"]["services"]["app"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return {"compose": list(test[1:]), "dockerfile": list(dockerfile_healthcheck)}


def run_check(cmd: list[str], port: int) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable if cmd[0] == "python" else cmd[0], *cmd[1:]]
    env = clean_env(PORT=str(port))
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=15)


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


class _Stub(http.server.BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:
        body = json.dumps({"status": "starting" if self.status != 200 else "ready"}).encode()
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [503, 500])
def test_checks_fail_on_a_not_ready_answer(
    rendered: dict[str, dict[str, Any]], dockerfile_healthcheck: list[str], status: int
) -> None:
    """Deterministic 'starting' case: a stand-in answering non-200 on /readyz."""
    handler: type[_Stub] = type("Stub", (_Stub,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        for name, cmd in check_commands(rendered, dockerfile_healthcheck).items():
            proc = run_check(cmd, server.server_address[1])
            assert proc.returncode != 0, f"{name} check passed on HTTP {status}"
        handler.status = 200
        for name, cmd in check_commands(rendered, dockerfile_healthcheck).items():
            assert run_check(cmd, server.server_address[1]).returncode == 0, name
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def app_process(rendered: dict[str, dict[str, Any]], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = container_env(rendered["base"], "app")
    env.update(
        PATH=os.environ["PATH"],
        HOST="127.0.0.1",
        PORT=str(port),
        METRICS_PORT=str(free_port()),
        # Nothing listens there: the app must become ready without the server (the server waits for it).
        INNGEST_BASE_URL=f"http://127.0.0.1:{free_port()}",
        INNGEST_SYNC_ON_STARTUP="false",
        SHUTDOWN_DRAIN_SECONDS=str(DRAIN),
        GRACEFUL_SHUTDOWN_TIMEOUT="5",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        SIDE_EFFECTS_DB=str(tmp_path / "effects.sqlite3"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_checks_follow_the_real_app_lifecycle(
    rendered: dict[str, dict[str, Any]],
    dockerfile_healthcheck: list[str],
    app_process: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = app_process
    commands = check_commands(rendered, dockerfile_healthcheck)

    # Before ready: the interpreter is still importing, nothing listens yet.
    for name, cmd in commands.items():
        assert run_check(cmd, port).returncode != 0, f"{name} passed before the app was ready"

    deadline = time.monotonic() + 30
    while run_check(commands["compose"], port).returncode != 0:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "app exited"
        assert time.monotonic() < deadline, "app never became ready"
        time.sleep(0.2)
    for name, cmd in commands.items():
        result = run_check(cmd, port)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    assert readyz(port)[0] == 200

    # The server calls exactly this path on this port (see test_server_calls_the_app_where_it_serves).
    path = rendered["base"]["services"]["app"]["environment"].get("INNGEST_SERVE_PATH", "/api/inngest")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            status, headers = resp.status, resp.headers
    except urllib.error.HTTPError as e:  # unsigned introspection may be refused in production mode
        status, headers = e.code, e.headers
    # The SDK (not a 404/redirect) answered: its responses carry X-Inngest-Sdk* headers.
    sdk_headers = [k for k in headers if k.lower().startswith("x-inngest-sdk")]
    assert status in (200, 401) and sdk_headers, (status, dict(headers))

    # Draining: /readyz is 503 for SHUTDOWN_DRAIN_SECONDS while the listener still answers.
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    status, body = readyz(port)
    assert (status, body["status"]) == (503, "draining")
    # Both checks at once: together they must fit in the drain window even on a busy machine.
    with ThreadPoolExecutor() as pool:
        results = dict(zip(commands, pool.map(lambda c: run_check(c, port), commands.values()), strict=True))
    for name, result in results.items():
        assert result.returncode != 0, f"{name} passed while draining"
    assert time.monotonic() - started < DRAIN, "checks ran after the drain window; the test proves nothing"
    # Clean exit after the drain; uvicorn re-raises the SIGTERM it handled, hence -15 is fine too.
    assert proc.wait(timeout=DRAIN + 10) in (0, -signal.SIGTERM)
