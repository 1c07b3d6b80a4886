"""A tiny, fast stand-in for the Inngest API on loopback (used by `make bench` only).

- `POST /e/{key}`       -> 200 `{"ids": [...], "status": 200}` with one id per event in the body
- `POST /fn/register`   -> 200 `{"ok": true, "modified": false, ...}` (counts the functions it received)
- anything else         -> 404

Raw asyncio protocol + httptools on uvloop (both pinned dependencies of the app), so the
sink costs far less CPU per request than the app it measures. Prints `SINK_READY <port>` when listening.

Run: python benchmarks/sink.py --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys

import httptools
import uvloop

_ids = itertools.count()


def _response(status: int, payload: bytes, keep_alive: bool) -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 400: b"Bad Request"}.get(status, b"OK")
    conn = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: %s\r\n\r\n"
        % (status, reason, len(payload), conn)
        + payload
    )


def handle(method: bytes, path: bytes, body: bytes) -> tuple[int, bytes]:
    if method == b"POST" and path.startswith(b"/e/"):
        try:
            parsed = json.loads(body) if body else []
        except ValueError:
            return 400, b'{"error":"invalid json","status":400}'
        count = len(parsed) if isinstance(parsed, list) else 1
        ids = [f"sink-{next(_ids)}" for _ in range(count)]
        return 200, json.dumps({"ids": ids, "status": 200}).encode()
    if method == b"POST" and path.startswith(b"/fn/register"):
        try:
            parsed = json.loads(body)
            functions = len(parsed.get("functions", []))
        except (ValueError, AttributeError):
            return 400, b'{"ok":false,"error":"invalid json"}'
        payload = {
            "ok": True,
            "modified": False,
            "sync_id": f"sync-{next(_ids)}",
            "app_id": "bench-sink",
            "functions": functions,
            "bytes": len(body),
        }
        return 200, json.dumps(payload).encode()
    return 404, b'{"error":"not found"}'


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(_response(400, b'{"error":"bad request"}', False))
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        status, payload = handle(method, path, b"".join(self.body))
        keep_alive = self.parser.should_keep_alive()
        if self.transport is not None:
            self.transport.write(_response(status, payload, keep_alive))
            if not keep_alive:
                self.transport.close()


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"SINK_READY {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
