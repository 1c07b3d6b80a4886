"""Request-smuggling framings: ambiguous or malformed body framing is a 400 from the HTTP server itself
(uvicorn + httptools/llhttp), the connection is closed, and the request hidden behind it is never answered.

Each request carries a fresh, well-formed signature, so had a framing been accepted the serve path's guard
would have answered (401) instead of the parser (400).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.fuzz.harness import App, running_app
from tests.security.serve import forged, serve_path

SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"
# name -> the framing headers, then the bytes after the blank line
FRAMINGS = {
    "content-length-and-chunked": (b"Content-Length: 4\r\nTransfer-Encoding: chunked", b"0\r\n\r\n"),
    "chunked-and-content-length": (b"Transfer-Encoding: chunked\r\nContent-Length: 4", b"0\r\n\r\n"),
    "two-different-content-lengths": (b"Content-Length: 4\r\nContent-Length: 5", b"{}}}}"),
    "two-equal-content-lengths": (b"Content-Length: 2\r\nContent-Length: 2", b"{}"),
    "content-length-list": (b"Content-Length: 2, 2", b"{}"),
    "content-length-with-sign": (b"Content-Length: +2", b"{}"),
    "unknown-transfer-coding": (b"Transfer-Encoding: xchunked", b"0\r\n\r\n"),
    "chunked-not-last": (b"Transfer-Encoding: chunked, identity", b"0\r\n\r\n"),
    "two-transfer-encodings": (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x", b"0\r\n\r\n"),
    "space-before-colon": (b"Transfer-Encoding : chunked", b"0\r\n\r\n"),
    "folded-transfer-encoding": (b"Transfer-Encoding:\r\n chunked", b"0\r\n\r\n"),
    "vertical-tab-in-coding": (b"Transfer-Encoding: \x0bchunked", b"0\r\n\r\n"),
    "chunk-size-overflow": (b"Transfer-Encoding: chunked", b"FFFFFFFFFFFFFFFFF1\r\n{}\r\n0\r\n\r\n"),
    "chunk-size-not-hex": (b"Transfer-Encoding: chunked", b"2x\r\n{}\r\n0\r\n\r\n"),
    "chunk-without-crlf": (b"Transfer-Encoding: chunked", b"2\r\n{}X0\r\n\r\n"),
    "bare-lf-chunk-size": (b"Transfer-Encoding: chunked", b"2\n{}\r\n0\r\n\r\n"),
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("framing")) as (started, _):
        yield started


def exchange(app: App, request: bytes) -> bytes:
    """Everything the server sends back until it closes the connection."""
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    return received


def test_there_are_at_least_nine_framings() -> None:
    assert len(FRAMINGS) >= 9


@pytest.mark.parametrize("name", sorted(FRAMINGS))
def test_ambiguous_framing_is_400_and_nothing_behind_it_is_answered(app: App, name: str) -> None:
    framing, rest = FRAMINGS[name]
    request = (
        f"POST {serve_path()} HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\n"
        f"X-Inngest-Signature: {forged()}\r\n".encode()
        + framing
        + b"\r\n\r\n"
        + rest
        + SMUGGLED
    )
    received = exchange(app, request)
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]
    assert received.count(b"HTTP/1.1 ") == 1, received  # closed: the smuggled GET got no answer
    assert app.alive()


def test_a_clean_request_on_the_same_app_still_gets_the_guards_answer(app: App) -> None:
    """The control: the same request with one plain Content-Length reaches the guard (401), and the
    pipelined GET behind it is answered too."""
    request = (
        f"POST {serve_path()} HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\n"
        f"X-Inngest-Signature: {forged()}\r\nContent-Length: 2\r\n\r\n{{}}".encode()
        + SMUGGLED
    )
    received = exchange(app, request)
    assert received.startswith(b"HTTP/1.1 401 "), received[:200]
    assert b"HTTP/1.1 200 " in received  # the keep-alive connection served the next request
