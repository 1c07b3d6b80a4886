"""HTTP/1.1 connection limits for uvicorn's httptools protocol, which has none of its own.

uvicorn 0.54's httptools protocol waits forever for request headers, lets llhttp (through httptools)
accumulate a header of any size, and its `limit_concurrency` counts idle and half-open connections
too, so a few thousand half-sent requests turn every real one into a 503. `LimitedHttpToolsProtocol` adds:

- a header deadline, from the connection's start (or the first byte of a later request) until the
  headers are complete: past it, 408 if part of a request came, else a plain close;
- a body deadline, from the end of the headers until the body is complete: past it, the connection is
  closed (the app sees the client disconnect), so a trickled body cannot hold a request slot;
- a cap on the header block's bytes and on its number of fields: 431;
- a concurrency limit on requests in flight (not connections): 503 with `Connection: close` above it,
  except for the probes, which must keep telling the orchestrator the truth under load;
- a connection cap below the open-file limit, so the process keeps descriptors for its own work;
- one throttled log line for upgrade requests (the server runs with ws="none": they are answered as plain
  HTTP), instead of uvicorn's two warnings per request.

Why a subclass and not another server (measured, docs/security.md#connection-limits): the subclass costs
0.8 µs per request over plain httptools; hypercorn (h11) costs six times uvicorn's CPU per request; granian
2.8 matches uvicorn's CPU but leaves a connection that sends nothing open indefinitely, ties the keep-alive
idle time to its header timeout, cannot change its header-count cap, and would replace uvicorn's process
model and shutdown under the SIGTERM drain (app.health).

Everything that touches uvicorn internals is in this module; tests/unit/test_http_limits.py pins it to
UVICORN_VERSION so an upgrade fails there first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

UVICORN_VERSION = "0.54.0"  # the version whose HttpToolsProtocol this module extends
# Descriptors kept for the process itself: database pool, calls to the Inngest server, metric files, logs.
FD_RESERVE = 256
# Bytes fed to the parser at once: bounds what a header may hold before the byte cap sees it.
_SLICE = 64 * 1024
PROBE_PATHS = frozenset({b"/healthz", b"/readyz"})
log = logging.getLogger("app.http")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_header_bytes: int
    max_headers: int
    limit_concurrency: int
    max_connections: int


class LimitedConfig(uvicorn.Config):
    """uvicorn.Config carrying the limits to every worker (it is pickled into each spawned process)."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, http=LimitedHttpToolsProtocol, **kwargs)
        self.connection_limits = limits


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (an unprivileged process may); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("open-file limit stays at %d: %s", soft, exc)
    return soft


def connection_cap(open_files: int) -> int:
    return max(open_files - FD_RESERVE, 16)


class _Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


class _Throttled:
    """One log line per reason per interval, with the count since the last: an attack must not flood the log."""

    def __init__(self, subject: str = "connection limits", interval: float = 10.0) -> None:
        self.subject = subject
        self.interval = interval
        self.pending: dict[str, int] = {}
        self.last: dict[str, float] = {}

    def note(self, reason: str) -> None:
        self.pending[reason] = self.pending.get(reason, 0) + 1
        now = time.monotonic()
        if now - self.last.get(reason, -self.interval) >= self.interval:
            log.warning("%s: %s (%d since the last report)", self.subject, reason, self.pending.pop(reason))
            self.last[reason] = now


_throttled = _Throttled()
_upgrades = _Throttled("protocol upgrades")


def _json_response(status: int, phrase: str, detail: str, extra: bytes = b"") -> bytes:
    body = json.dumps({"detail": detail}).encode()
    return b"".join(
        [
            f"HTTP/1.1 {status} {phrase}\r\n".encode(),
            b"content-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n",
            extra,
            b"\r\n",
            body,
        ]
    )


_PHRASES = {408: "Request Timeout", 431: "Request Header Fields Too Large"}


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    body = json.dumps({"detail": "too many requests in flight; retry shortly"}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: uvicorn.Config, server_state: ServerState, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, server_state, *args, **kwargs)
        if not isinstance(config, LimitedConfig):
            raise TypeError("LimitedHttpToolsProtocol needs a LimitedConfig")
        self.limits = config.connection_limits
        self.limit_concurrency = None  # uvicorn's own check counts connections; ours counts requests
        self.app_ = self.app
        self.deadline: asyncio.TimerHandle | None = None
        self.body_deadline: asyncio.TimerHandle | None = None
        self.reading = False  # a request has begun and its headers are not complete
        self.began = False  # ... and it began in the slice being fed
        self.header_bytes = 0  # whole slices fed while reading one header block
        self.slice_bytes = 0  # length of the slice being fed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _throttled.note(f"connection refused: {self.limits.max_connections} connections open")
            transport.abort()
            return
        self.deadline = self.loop.call_later(self.limits.header_timeout, self.header_timeout_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_deadline()
        self.cancel_body_deadline()
        super().connection_lost(exc)

    def cancel_body_deadline(self) -> None:
        if self.body_deadline is not None:
            self.body_deadline.cancel()
            self.body_deadline = None

    def cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if len(data) <= _SLICE:
            self.feed(data)
            return
        view = memoryview(data)
        for start in range(0, len(data), _SLICE):
            if not self.feed(view[start : start + _SLICE]):
                return

    def feed(self, data: bytes | memoryview) -> bool:
        """Parse one slice (as uvicorn's data_received does); False once the connection is refused or handed over."""
        self.began = False
        self.slice_bytes = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                # The request was answered as plain HTTP/1.1 (RFC 9110 7.8 lets a server ignore Upgrade); uvicorn's
                # own two warnings per request, with install advice, would let any client flood the log.
                _upgrades.note("ignored, answered as plain HTTP/1.1 (ws=none)")
            return False
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _Refused):
                self.refuse(exc.__context__)
            else:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return False
        if self.body_deadline is None and not self.reading and self.cycle is not None and self.cycle.more_body:
            # Headers done, body still coming (a request without a body is complete within the same feed).
            self.body_deadline = self.loop.call_later(self.limits.body_timeout, self.body_timeout_handler)
        if self.reading:
            if not self.began:  # the whole slice belongs to this header block
                self.header_bytes += len(data)
            if self.header_bytes > self.limits.max_header_bytes or len(self.headers) > self.limits.max_headers:
                self.refuse(self.too_large())
                return False
            if self.deadline is None:
                self.deadline = self.loop.call_later(self.limits.header_timeout, self.header_timeout_handler)
        elif self.deadline is None and self.timeout_keep_alive_task is None and self.idle():
            # Bytes that start no request (blank lines) must not keep an idle connection open forever.
            self.deadline = self.loop.call_later(self.limits.header_timeout, self.header_timeout_handler)
        return True

    def idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def too_large(self) -> _Refused:
        if len(self.headers) > self.limits.max_headers:
            detail = f"more than {self.limits.max_headers} header fields"
        else:
            detail = f"request headers larger than {self.limits.max_header_bytes} bytes"
        return _Refused(431, "431 header block too large", detail)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading = self.began = True
        self.header_bytes = 0

    def on_headers_complete(self) -> None:
        self.reading = False
        self.cancel_deadline()
        limits = self.limits
        if len(self.headers) > limits.max_headers or (
            # A block that began and ended within one slice no larger than the cap is small enough: skip the sum.
            not (self.began and self.slice_bytes <= limits.max_header_bytes)
            and (
                self.header_bytes > limits.max_header_bytes
                or len(self.url) + sum(len(k) + len(v) for k, v in self.headers) > limits.max_header_bytes
            )
        ):
            raise self.too_large()  # stops the parser; feed() answers
        self.app = self.app_
        if len(self.tasks) >= limits.limit_concurrency and self.url.partition(b"?")[0] not in PROBE_PATHS:
            _throttled.note(f"503: {limits.limit_concurrency} requests in flight")
            self.app = _busy
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.cancel_body_deadline()
        super().on_message_complete()

    def body_timeout_handler(self) -> None:
        self.body_deadline = None
        if not self.transport.is_closing():
            _throttled.note(f"closed: request body not complete in {self.limits.body_timeout:g} s")
            self.transport.close()

    def refuse(self, refused: _Refused) -> None:
        self.reading = False
        self.cancel_deadline()
        _throttled.note(refused.reason)
        if self.idle():  # never in the middle of another response's bytes
            self.transport.write(_json_response(refused.status, _PHRASES[refused.status], refused.detail))
        self.transport.close()

    def header_timeout_handler(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        if not self.idle():
            self.cycle.keep_alive = False  # a pipelined request is late: close after the current response
            return
        if self.reading:
            timeout = f"{self.limits.header_timeout:g}"
            self.refuse(_Refused(408, "408 request headers too slow", f"request headers not complete in {timeout} s"))
            return
        _throttled.note("closed: no request within the header timeout")
        self.transport.close()
