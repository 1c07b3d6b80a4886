"""A loopback HTTP proxy in front of the real Inngest server that loses the answers to the first event sends.

The send reaches the server and is stored, but the caller never hears back: exactly the slow-server case
in which the SDK retries. The ids the server gave every send are kept, answered or not.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


class FlakyProxy:
    def __init__(self, upstream: str, lose: int) -> None:
        self.lose = lose
        self.sends: list[list[str]] = []  # the server's ids for each event send, in order
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                res = httpx.request(self.command, upstream + self.path, content=body, headers=headers, timeout=30)
                if self.command == "POST" and self.path.startswith("/e/"):
                    with proxy.lock:
                        proxy.sends.append(list(res.json().get("ids") or []))
                        lost = len(proxy.sends) <= proxy.lose  # `lose` may be raised between sends
                    if lost:  # stored upstream, but the answer never arrives
                        self.close_connection = True
                        return
                self.send_response(res.status_code)
                for key, value in res.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(res.content)))
                self.end_headers()
                self.wfile.write(res.content)

            do_GET = do_POST = do_PUT = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="flaky-proxy", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
