"""scripts/send_event.py and the polling half of scripts/e2e.py, against loopback stand-ins.

(`make e2e` itself needs Docker and the image registry; here only its HTTP logic runs.)
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts import e2e, send_event
from tests.support import ROOT


class Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[tuple[str, str, dict[str, str], Any]]
    replies: list[tuple[int, Any]]

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((self.command, self.path, dict(self.headers), body))
        status, payload = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[tuple[str, type[Recorder]]]:
    handler = type("Handler", (Recorder,), {"requests": [], "replies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_send_event_posts_to_the_event_api_with_the_first_token_from_env_file(
    stub: tuple[str, type[Recorder]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = stub
    handler.replies.append((200, {"ids": ["01JABC"]}))
    env_file = tmp_path / ".env"
    env_file.write_text("INNGEST_EVENT_KEY=x\nEVENT_API_KEYS=first-token=test/*,second-token\n")
    for name in ("EVENT_API_KEY", "EVENT_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENV_FILE", str(env_file))
    ids = send_event.send("test/integration", {"message": "Hello"}, app_url=url)
    assert ids == ["01JABC"]
    method, path, headers, body = handler.requests[0]
    assert (method, path, body) == ("POST", "/api/events", {"name": "test/integration", "data": {"message": "Hello"}})
    assert headers["Authorization"] == "Bearer first-token"


def test_e2e_polls_the_server_until_completed(
    stub: tuple[str, type[Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = stub
    handler.replies += [
        (200, {"data": [], "metadata": {}}),
        (200, {"data": [{"run_id": "01RUN", "status": "Running"}], "metadata": {}}),
        (200, {"data": [{"run_id": "01RUN", "status": "Completed", "output": "Hello"}], "metadata": {}}),
    ]
    monkeypatch.setattr(e2e, "SERVER", url)
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    run = e2e.wait_for_run("01EVENT", "a1b2")
    assert e2e.output_of(run) == "Hello"
    method, path, headers, _ = handler.requests[-1]
    assert (method, path) == ("GET", "/v1/events/01EVENT/runs")
    assert headers["Authorization"] == "Bearer a1b2"


def test_e2e_stops_on_a_failed_run(stub: tuple[str, type[Recorder]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, handler = stub
    handler.replies.append((200, {"data": [{"run_id": "01RUN", "status": "Failed", "output": {"error": "x"}}]}))
    monkeypatch.setattr(e2e, "SERVER", url)
    with pytest.raises(SystemExit, match="Failed"):
        e2e.wait_for_run("01EVENT", "a1b2")


def test_make_send_reads_the_app_port_from_the_env_file(
    stub: tuple[str, type[Recorder]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = stub
    handler.replies.append((200, {"ids": ["01FROMENV"]}))
    env_file = tmp_path / "stack.env"
    env_file.write_text(f"INNGEST_EVENT_KEY=abc\nAPP_PORT={url.rsplit(':', 1)[1]}\n")
    monkeypatch.delenv("APP_PORT", raising=False)
    monkeypatch.delenv("APP_URL", raising=False)
    proc = subprocess.run(
        ["make", "--no-print-directory", "send", f"ENV_FILE={env_file}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "01FROMENV"
    assert [(m, p) for m, p, _, _ in handler.requests] == [("POST", "/api/events")]
