"""A scripted registration API in the test process: each test sets the server's answers.

The stand-in (`python -m tests.standin`) is a whole server with real behaviour in its own process; the
process tests of the app need the opposite: exact answers chosen per test (ok false, 401, unreachable then
up) and a record of what the SDK sent, without a second process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.standin.protocol import hashed_signing_key
from tests.support import free_port


class FakeRegistry:
    """Answers /fn/register (and what doctor asks) like `inngest start`; replies are scripted per test."""

    def __init__(self, signing_key: str, event_key: str, port: int | None = None) -> None:
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

            def _text(self, status: int, text: str) -> None:
                """`inngest start`'s plain-text answers: a refused key, an unknown route."""
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                return self.headers.get("Authorization") == f"Bearer {hashed_signing_key(signing_key)}"

            def do_GET(self) -> None:
                if self.path == "/health":
                    self._reply(200, {"status": 200, "message": "OK"})
                elif self.path == "/dev":  # `inngest start`: 401 without the key, 404 with it
                    if self._authorized():
                        self._text(404, "404 page not found\n")
                    else:
                        self._text(401, "Authentication failed\n")
                else:
                    self._reply(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.startswith("/fn/register"):
                    registry.auth_headers.append(self.headers.get("Authorization", ""))
                    if not self._authorized():
                        self._text(401, "Authentication failed\n")
                        return
                    registry.registrations.append(json.loads(body))
                    status, reply = registry.replies.pop(0) if registry.replies else registry.default
                    self._reply(status, reply)
                elif self.path.startswith("/e/"):
                    if self.path != f"/e/{event_key}":
                        self._reply(401, {"error": "Event key not found"})
                    else:
                        events = json.loads(body or b"[]")
                        self._reply(200, {"ids": [f"id{i}" for i, _ in enumerate(events)], "status": 200})
                else:
                    self._reply(404, {"error": "not found"})

        self._server_class: Callable[[], ThreadingHTTPServer] = lambda: ThreadingHTTPServer(
            ("127.0.0.1", self.port), Handler
        )
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
