"""Helpers to run the app as a real process and a loopback stand-in for the server's registration API."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support import free_port

from .conftest import EVENT_KEY, SIGNING_KEY


def app_env(port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_") and k not in {"PORT", "WEB_CONCURRENCY"}}
    return (
        env
        | {
            "INNGEST_MODE": "self-hosted",
            "INNGEST_BASE_URL": "http://127.0.0.1:1",
            "INNGEST_SIGNING_KEY": SIGNING_KEY,
            "INNGEST_EVENT_KEY": EVENT_KEY,
            "INNGEST_SERVE_ORIGIN": f"http://127.0.0.1:{port}",
            "INNGEST_ALLOW_LOOPBACK_ORIGIN": "true",
            "INNGEST_SYNC_ON_STARTUP": "false",
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "SIDE_EFFECTS_DB": str(tmp_path / f"effects-{port}.sqlite3"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{port}"),
            "LOG_LEVEL": "INFO",
            "SHUTDOWN_DRAIN_SECONDS": "0",
        }
        | extra
    )


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def running_app(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_for(lambda: httpx.get(f"{base}/readyz", timeout=1).status_code == 200, what=f"app ready ({log})")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def hashed_key(key: str = SIGNING_KEY) -> str:
    return hashlib.sha256(bytes.fromhex(key)).hexdigest()


class FakeRegistry:
    """Answers /fn/register (and what doctor asks) like `inngest start`; replies are scripted per test."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.replies: list[tuple[int, dict[str, Any]]] = []
        self.default: tuple[int, dict[str, Any]] = (
            200,
            {"ok": True, "modified": True, "sync_id": "s1", "app_id": "a1"},
        )
        self.registrations: list[dict[str, Any]] = []
        self.auth_headers: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Inngest-Server-Kind", "cloud")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                return self.headers.get("Authorization") == f"Bearer {hashed_key()}"

            def do_GET(self) -> None:
                if self.path == "/health":
                    self._reply(200, {"status": 200, "message": "OK"})
                elif self.path == "/dev":  # `inngest start`: 401 without the key, 404 with it
                    self._reply(404 if self._authorized() else 401, {"error": "not found"})
                else:
                    self._reply(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.startswith("/fn/register"):
                    registry.auth_headers.append(self.headers.get("Authorization", ""))
                    if not self._authorized():
                        self._reply(401, {"error": "signing key invalid"})
                        return
                    registry.registrations.append(json.loads(body))
                    status, reply = registry.replies.pop(0) if registry.replies else registry.default
                    self._reply(status, reply)
                elif self.path.startswith("/e/"):
                    if self.path != f"/e/{EVENT_KEY}":
                        self._reply(401, {"error": "Event key not found"})
                    else:
                        events = json.loads(body or b"[]")
                        self._reply(200, {"ids": [f"id{i}" for i, _ in enumerate(events)], "status": 200})
                else:
                    self._reply(404, {"error": "not found"})

        self._server_class = lambda: ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeRegistry:
        self._server = self._server_class()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
