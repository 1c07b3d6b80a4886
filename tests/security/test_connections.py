"""What one client may hold of the app's HTTP server: half-sent and idle connections, oversized header
blocks, and more requests in flight than the limit. Each is sent as an attacker would, over raw sockets to
a real `python -m app`; closes are counted from the client side."""

from __future__ import annotations

import contextlib
import http.client
import resource
import selectors
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.fuzz.harness import App, EventSink
from tests.security.health_probe import HealthProbe
from tests.standin.fixtures import rss_kib
from tests.support import wait_until

SecureApp = Callable[..., tuple[App, EventSink]]
HALF_OPEN = 3_000
HEADER_TIMEOUT = 4.0
SLACK = 6.0  # "within seconds" of the timeout, on a shared two-core machine
MIB = 1024 * 1024


@contextlib.contextmanager
def open_file_limit(soft: int) -> Iterator[None]:
    """This process's soft RLIMIT_NOFILE for the block (children started inside inherit it)."""
    old_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft > hard:
        pytest.skip(f"needs {soft} open files; the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (old_soft, hard))


def open_connections(port: int, count: int, first_bytes: bytes) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if first_bytes:
            sock.sendall(first_bytes)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def wait_closed(socks: list[socket.socket], deadline: float) -> tuple[list[float], list[bytes]]:
    """Read every socket until the server closes it or the deadline passes: (close times, bytes each got)."""
    received = {sock: b"" for sock in socks}
    closed_at: list[float] = []
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ, sock)
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                sock = key.data
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    received[sock] += data
                    continue
                closed_at.append(time.monotonic())
                sel.unregister(sock)
        for sock in socks:
            sock.close()
    return closed_at, list(received.values())


def request_with_headers(port: int, extra: bytes, timeout: float = 10) -> bytes:
    """One raw GET /healthz with `extra` header lines; the whole answer (the server closes or we stop reading)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: app\r\nConnection: close\r\n" + extra + b"\r\n")
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def test_half_open_connections_are_closed_after_the_header_timeout_while_healthz_answers(
    secure_app: SecureApp,
) -> None:
    with open_file_limit(HALF_OPEN + 1024):
        app, _ = secure_app(HTTP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT))
        with HealthProbe(app.url) as probe:
            opened = time.monotonic()
            socks = open_connections(app.port, HALF_OPEN, b"POST /api/events HTTP/1.1\r\nHost: app\r\nX-Slow: ")
            all_open = time.monotonic()
            closed_at, answers = wait_closed(socks, all_open + HEADER_TIMEOUT + SLACK)
    assert len(closed_at) == HALF_OPEN, (
        f"{HALF_OPEN - len(closed_at)} of {HALF_OPEN:,} half-sent requests still open "
        f"{HEADER_TIMEOUT + SLACK:g} s after the last was opened"
    )
    assert min(closed_at) - opened >= HEADER_TIMEOUT - 0.5, "closed by the header timeout, not before it"
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
    assert not probe.failures, probe.failures[:5]
    assert probe.answered >= 10, "/healthz was probed throughout"
    assert app.alive()


def test_idle_connections_beyond_the_inherited_open_file_limit_leave_healthz_answering(
    secure_app: SecureApp,
) -> None:
    # The attack: 1,010 connections that send nothing, against a process started with nofile 1024.
    with open_file_limit(1024):
        app, _ = secure_app(HTTP_HEADER_TIMEOUT_SECONDS="3")
    socks = open_connections(app.port, 1010, b"")
    try:
        for _ in range(3):
            res = httpx.get(f"{app.url}/healthz", timeout=5, headers={"Connection": "close"})
            assert res.status_code == 200
        closed_at, answers = wait_closed(socks, time.monotonic() + 3 + SLACK)
    finally:
        for sock in socks:
            sock.close()
    assert len(closed_at) == len(socks), f"{len(socks) - len(closed_at)} idle connections never closed"
    assert set(answers) == {b""}, "nothing was asked, so nothing is answered: a plain close"


def test_idle_keep_alive_connection_is_closed_after_the_idle_timeout(secure_app: SecureApp) -> None:
    app, _ = secure_app(HTTP_IDLE_TIMEOUT_SECONDS="1")
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=15)
    for _ in range(2):  # the second request reuses the connection: keep-alive works
        conn.request("GET", "/healthz")
        res = conn.getresponse()
        assert res.status == 200 and res.read() == b'{"status":"ok"}'
    answered = time.monotonic()
    assert conn.sock is not None
    assert conn.sock.recv(1) == b"", "the server closes an idle connection without a word"
    idle = time.monotonic() - answered
    conn.close()
    assert idle < 1 + 2.5, f"closed after {idle:.1f} s idle; HTTP_IDLE_TIMEOUT_SECONDS is 1"


def test_header_block_over_the_byte_limit_gets_431(secure_app: SecureApp) -> None:
    app, _ = secure_app()  # default HTTP_MAX_HEADER_BYTES: 64 KiB
    assert request_with_headers(app.port, b"X-Fill: " + b"a" * 60_000 + b"\r\n").startswith(b"HTTP/1.1 200 ")
    answer = request_with_headers(app.port, b"X-Fill: " + b"a" * 70_000 + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"detail": "request headers larger than 65536 bytes"' in answer
    # The same bytes spread over many fields, and a request line alone over the limit.
    many = b"".join(b"X-Fill-%d: %s\r\n" % (i, b"b" * 1000) for i in range(70))
    assert request_with_headers(app.port, many).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz?" + b"q" * 70_000 + b" HTTP/1.1\r\nHost: app\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 431 ")


def test_four_100_mb_headers_are_cut_short_and_leave_memory_bounded(secure_app: SecureApp) -> None:
    app, _ = secure_app()
    assert app.proc is not None
    assert request_with_headers(app.port, b"").startswith(b"HTTP/1.1 200 ")
    before = rss_kib(app.proc.pid)
    chunk = b"a" * MIB
    for attempt in range(4):
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: app\r\nX-Big: ")
            sent = 0
            try:
                while sent < 100 * MIB:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except TimeoutError:
                pytest.fail(f"attempt {attempt}: the server neither read on nor refused after {sent // MIB} MiB")
            assert sent < 100 * MIB, f"attempt {attempt}: the server read a 100 MiB header to the end"
            try:
                answer = sock.recv(200)
            except ConnectionResetError:
                answer = b""  # refused while our bytes were still arriving: the kernel resets
            assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer
    growth_mib = (rss_kib(app.proc.pid) - before) / 1024
    assert growth_mib < 32, f"RSS grew {growth_mib:.0f} MiB over four 100 MiB header attempts"
    assert httpx.get(f"{app.url}/healthz", timeout=5).status_code == 200


def test_too_many_header_fields_get_431(secure_app: SecureApp) -> None:
    app, _ = secure_app()  # default HTTP_MAX_HEADERS: 100
    # Host and Connection are two of the fields.
    ninety_eight = b"".join(b"X-F%d: v\r\n" % i for i in range(98))
    assert request_with_headers(app.port, ninety_eight).startswith(b"HTTP/1.1 200 ")
    answer = request_with_headers(app.port, ninety_eight + b"X-One-More: v\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"detail": "more than 100 header fields"' in answer


def test_requests_above_the_concurrency_limit_get_503_while_the_probes_answer(secure_app: SecureApp) -> None:
    app, sink = secure_app(HTTP_LIMIT_CONCURRENCY="4")
    event = {"name": "test/integration", "data": {}}
    holders = []
    for _ in range(4):  # requests in flight: headers sent, the body never finished
        sock = socket.create_connection(("127.0.0.1", app.port), timeout=10)
        sock.sendall(
            b"POST /api/events HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
            b"Authorization: Bearer " + app.event_api_token.encode() + b"\r\n\r\n{"
        )
        holders.append(sock)
    try:

        def shed() -> httpx.Response | None:
            res = httpx.post(f"{app.url}/api/events", json=event, headers=app.auth, timeout=5)
            return res if res.status_code == 503 else None

        busy = wait_until(shed, timeout=10, what="503 above HTTP_LIMIT_CONCURRENCY")
        assert busy.json() == {"detail": "too many requests in flight; retry shortly"}
        assert busy.headers["retry-after"] == "1" and busy.headers["connection"] == "close"
        assert httpx.get(f"{app.url}/metrics", timeout=5).status_code == 503
        # Liveness must not restart a busy process; readiness reports its lifecycle, not its load.
        assert httpx.get(f"{app.url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{app.url}/readyz", timeout=5).status_code == 200
    finally:
        for sock in holders:
            sock.close()
    wait_until(
        lambda: httpx.post(f"{app.url}/api/events", json=event, headers=app.auth).status_code == 200,
        timeout=10,
        what="requests accepted again once the in-flight ones ended",
    )
    assert sink.total() >= 1


def test_a_body_not_finished_within_the_body_timeout_is_cut_and_frees_its_slot(secure_app: SecureApp) -> None:
    app, sink = secure_app(HTTP_LIMIT_CONCURRENCY="4", HTTP_BODY_TIMEOUT_SECONDS="2")
    head = (
        b"POST /api/events HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
        b"Authorization: Bearer " + app.event_api_token.encode() + b"\r\n\r\n{"
    )
    sent = time.monotonic()
    trickling = open_connections(app.port, 4, head)  # every slot held by a body that never ends
    closed_at, _ = wait_closed(trickling, sent + 2 + SLACK)
    assert len(closed_at) == 4, f"{4 - len(closed_at)} of 4 trickled bodies still open after {2 + SLACK:g} s"
    assert min(closed_at) - sent >= 2 - 0.5, "cut by the body timeout, not before it"
    res = httpx.post(f"{app.url}/api/events", json={"name": "test/integration", "data": {}}, headers=app.auth)
    assert res.status_code == 200, res.text  # the slots are free again
    assert sink.total() == 1 and app.alive()
