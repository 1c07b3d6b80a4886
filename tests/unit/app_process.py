"""The app as a real process (`python -m app`) on a loopback port, for the tests that need one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support import free_port, wait_until
from tests.support.metrics import scrape

from .conftest import EVENT_API_TOKEN, EVENT_KEY, SIGNING_KEY

EVENT_API_AUTH = {"Authorization": f"Bearer {EVENT_API_TOKEN}"}


def app_env(port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_") and k not in {"PORT", "WEB_CONCURRENCY"}}
    return (
        env
        | {
            "INNGEST_MODE": "self-hosted",
            "INNGEST_BASE_URL": "http://127.0.0.1:1",
            "INNGEST_SIGNING_KEY": SIGNING_KEY,
            "INNGEST_EVENT_KEY": EVENT_KEY,
            "EVENT_API_KEYS": EVENT_API_TOKEN,
            "INNGEST_SERVE_ORIGIN": f"http://127.0.0.1:{port}",
            "INNGEST_ALLOW_LOOPBACK_ORIGIN": "true",
            "INNGEST_SYNC_ON_STARTUP": "false",
            "PORT": str(port),
            "METRICS_PORT": str(free_port()),
            "HOST": "127.0.0.1",
            "SIDE_EFFECTS_DB": str(tmp_path / f"effects-{port}.sqlite3"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{port}"),
            "LOG_LEVEL": "INFO",
            "SHUTDOWN_DRAIN_SECONDS": "0",
        }
        | extra
    )


def metrics(env: dict[str, str]) -> str:
    """The app's /metrics, from the METRICS_PORT of `env`."""
    return scrape(env["METRICS_PORT"])


@contextmanager
def running_app(env: dict[str, str], log: Path, *args: str, timeout: float = 20) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app", *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_until(
            lambda: httpx.get(f"{base}/readyz", timeout=1).status_code == 200, timeout, what=f"app ready ({log})"
        )
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
