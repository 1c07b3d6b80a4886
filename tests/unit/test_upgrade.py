"""Protocol upgrades: the server runs with uvicorn's ws="none" (no WebSocket endpoints, no WebSocket library in
the image), so an `Upgrade: websocket` request is answered as plain HTTP/1.1, never with a 101, whether or not
a WebSocket library is importable, and the log gets one throttled line instead of two warnings per request."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.security.serve import read_answer
from tests.support import free_port

from .app_process import app_env, running_app

HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def exchange(sock: socket.socket, request: str) -> bytes:
    sock.sendall(request.encode())
    return read_answer(sock)


def test_websocket_upgrades_get_plain_http_answers_and_one_log_line(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "app.log"
    with running_app(app_env(port, tmp_path), log):
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                for path, status in (("/healthz", b"200"), ("/ws", b"404")):
                    answer = exchange(sock, HANDSHAKE.format(path=path))
                    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:200]
                    assert b"sec-websocket-accept" not in answer.lower(), answer[:200]
                # The connection stays HTTP/1.1: a plain request on it is answered too.
                plain = exchange(sock, "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert plain.startswith(b"HTTP/1.1 200 "), plain[:200]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    upgrades = [r for r in records if "upgrade" in r["message"].lower()]
    # Six upgrade requests within the throttle's interval: one line, none of uvicorn's install advice.
    assert [r["message"] for r in upgrades] == [
        "protocol upgrades: ignored, answered as plain HTTP/1.1 (ws=none) (1 since the last report)"
    ], upgrades
    assert not any("WebSocket library" in r["message"] for r in records)
