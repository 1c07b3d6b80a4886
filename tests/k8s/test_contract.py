"""The rendered Deployment against the real app: probe paths and ports answer as Kubernetes expects,
readiness drops to 503 while draining, and the init containers' wait loops work."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.k8s.conftest import Doc, app_config, one
from tests.support import free_port
from tests.support.process import clean_env

# The interpreter running the tests has the app installed (`make venv`), like the image's venv.
PYTHON = Path(sys.executable)
TEST_SIGNING_KEY = "0123456789abcdef" * 4


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class RunningApp:
    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    container: Doc
    spec: Doc
    config: dict[str, str]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _python() -> str:
    pytest.importorskip("app.main", reason="run `make venv` (installs the app)")
    return str(PYTHON)


@pytest.fixture(scope="module")
def deployment(rendered: dict[str, list[Doc]]) -> tuple[Doc, Doc, dict[str, str]]:
    docs = rendered["self-hosted"]
    spec = one(docs, "Deployment", "app")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return container, spec, app_config(docs)


def start_app(deployment: tuple[Doc, Doc, dict[str, str]], tmp: Path) -> RunningApp:
    container, spec, config = deployment
    port, metrics_port = free_port(), free_port()
    env = {
        **clean_env(),
        **config,
        # What the Secret provides, with test values of the right shape.
        "INNGEST_SIGNING_KEY": TEST_SIGNING_KEY,
        "INNGEST_EVENT_KEY": "test-event-key",
        # No server here: an unused loopback port, and no startup sync.
        "INNGEST_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "INNGEST_SYNC_ON_STARTUP": "false",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        # The ConfigMap's METRICS_PORT (9000) on a free port here: other test runs share this machine.
        "METRICS_PORT": str(metrics_port),
        "SIDE_EFFECTS_DB": str(tmp / "side-effects.sqlite3"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    proc = subprocess.Popen(
        [_python(), *container["command"][1:]],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    app = RunningApp(proc, port, metrics_port, container, spec, config)
    # As the startupProbe would: poll its path until 200 within its budget.
    probe = container["startupProbe"]
    deadline = time.monotonic() + probe["periodSeconds"] * probe["failureThreshold"]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app exited {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if get(app.url(probe["httpGet"]["path"]))[0] == 200:
                return app
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail("app never became ready within the startupProbe budget")


def stop(app: RunningApp) -> None:
    if app.proc.poll() is None:
        app.proc.kill()
    app.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def running(
    deployment: tuple[Doc, Doc, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    app = start_app(deployment, tmp_path_factory.mktemp("app"))
    yield app
    stop(app)


def _port_number(container: Doc, port: str | int) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(match)


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_probe_answers_200_on_its_path_and_port(running: RunningApp, probe: str) -> None:
    http = running.container[probe]["httpGet"]
    # The probe's (named) port is the port the app listens on (PORT in the ConfigMap).
    assert _port_number(running.container, http["port"]) == int(running.config["PORT"])
    status, _ = get(running.url(http["path"]), timeout=running.container[probe]["timeoutSeconds"])
    assert status == 200


def test_metrics_answer_on_the_metrics_port_only(running: RunningApp) -> None:
    # The container's `metrics` port (Service app-metrics) is METRICS_PORT, distinct from the API's.
    assert (
        _port_number(running.container, "metrics") == int(running.config["METRICS_PORT"]) != int(running.config["PORT"])
    )
    status, body = get(f"http://127.0.0.1:{running.metrics_port}/metrics")
    assert status == 200 and b"app_build_info" in body
    assert get(running.url("/metrics"))[0] == 404


def test_serve_path_answers_on_the_service_port(running: RunningApp) -> None:
    # What the server's --sdk-url points at: served at exactly that path, no redirect (a redirect
    # turns the server's POST into a GET). Unsigned requests may be refused in production mode.
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
    try:
        conn.request("GET", running.config["INNGEST_SERVE_PATH"])
        status = conn.getresponse().status
    finally:
        conn.close()
    assert status in (200, 401), status


def _wait_command(spec: Doc, name: str, port: int) -> str:
    (init,) = [c for c in spec["initContainers"] if c["name"] == name]
    assert init["command"][:2] == ["sh", "-c"]
    script: str = init["command"][2]
    return script.replace("http://app:8000", f"http://127.0.0.1:{port}")


def test_init_container_wait_loop_passes_once_the_app_is_ready(
    running: RunningApp, rendered: dict[str, list[Doc]]
) -> None:
    server = one(rendered["self-hosted"], "Deployment", "inngest")["spec"]["template"]["spec"]
    script = _wait_command(server, "wait-for-app", running.port)
    env = {**os.environ, "PATH": f"{PYTHON.parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run(["sh", "-c", script], env=env, timeout=30, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_init_container_wait_loop_keeps_waiting_while_the_app_is_down(rendered: dict[str, list[Doc]]) -> None:
    _python()
    server = one(rendered["self-hosted"], "Deployment", "inngest")["spec"]["template"]["spec"]
    script = _wait_command(server, "wait-for-app", free_port())
    env = {**os.environ, "PATH": f"{PYTHON.parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(3)
        assert proc.poll() is None, "the wait loop gave up instead of waiting"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_readiness_is_503_while_draining(deployment: tuple[Doc, Doc, dict[str, str]], tmp_path: Path) -> None:
    """SIGTERM (after preStop): /readyz 503 at once, /healthz still 200, exit well within the grace period."""
    app = start_app(deployment, tmp_path)
    try:
        ready = app.container["readinessProbe"]["httpGet"]["path"]
        live = app.container["livenessProbe"]["httpGet"]["path"]
        drain = float(app.config["SHUTDOWN_DRAIN_SECONDS"])
        assert drain > 0
        assert get(app.url(ready))[0] == 200
        sent = time.monotonic()
        app.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        status, body = get(app.url(ready))
        assert status == 503 and b"draining" in body
        # Liveness must not fail during the drain, or the kubelet would kill the pod early.
        assert get(app.url(live))[0] == 200
        # Still serving (and still 503) for most of the drain window.
        time.sleep(max(drain - 1.0, 0))
        assert get(app.url(ready))[0] == 503
        budget = app.spec["terminationGracePeriodSeconds"] - app.container["lifecycle"]["preStop"]["sleep"]["seconds"]
        app.proc.wait(timeout=budget)
        elapsed = time.monotonic() - sent
        # uvicorn re-raises SIGTERM after a clean shutdown; either way it was not a SIGKILL.
        assert app.proc.returncode in (0, -signal.SIGTERM), app.proc.stderr.read().decode() if app.proc.stderr else ""
        assert drain <= elapsed < budget
    finally:
        stop(app)


def test_python_runs_the_app_like_the_container() -> None:
    """The container runs `python -m app`; the module entry point exists in the installed package."""
    result = subprocess.run(
        [_python(), "-m", "app", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and "sync" in result.stdout
    assert sys.version_info >= (3, 11)
