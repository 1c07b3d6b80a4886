"""The serve path's body: read up to SERVE_MAX_BODY_BYTES (413 past it, declared or chunked, with the rest
never read) and verified by HMAC over its bytes before anything parses it."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterator

from tests.fuzz.harness import App, EventSink, invocation, sign
from tests.security.health_probe import HealthProbe
from tests.security.serve import MB, answer, forged, post_serve, read_answer, refusal_lines, serve_path
from tests.standin.fixtures import rss_kib
from tests.support import wait_until

LIMIT = 5 * MB  # the default: the server's 4 MiB per call, and margin


def head(signature: str, framing: str) -> bytes:
    return (
        f"POST {serve_path()} HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\n"
        f"X-Inngest-Signature: {signature}\r\n{framing}\r\n\r\n"
    ).encode()


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """`total` bytes of JSON-looking text in HTTP/1.1 chunks of `size`."""
    payload = b'{"pad":"' + b"a" * size
    for offset in range(0, total, size):
        data = payload[: min(size, total - offset)]
        yield f"{len(data):x}\r\n".encode() + data + b"\r\n"


def stream_until_answered(sock: socket.socket, parts: Iterator[bytes]) -> tuple[bytes, int]:
    """Send `parts` until the server answers or stops reading; (its answer's head, bytes sent)."""
    sent = 0
    for part in parts:
        if select.select([sock], [], [], 0)[0]:
            break  # an answer (or the close) arrived
        try:
            sock.sendall(part)
        except OSError:  # reset, or no longer read
            break
        sent += len(part)
    return read_answer(sock), sent


def test_forged_20_mb_with_a_fresh_signature_is_413_at_the_limit_with_bounded_memory(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    """Declared: refused before one byte of the body is read. Chunked: refused once past the limit and the
    connection closed (the client, still sending, may then see a reset after the 413's head); the app never
    holds more than the limit, /healthz keeps answering."""
    app, _ = secure_app()
    assert app.proc is not None
    before = rss_kib(app.proc.pid)
    with HealthProbe(app.url, interval=0.05, timeout=10) as health:
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
            sock.sendall(head(forged(), f"Content-Length: {20 * MB}"))
            declared = read_answer(sock)  # the answer comes before the body is sent
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
            sock.sendall(head(forged(), "Transfer-Encoding: chunked"))
            chunked, sent = stream_until_answered(sock, chunks(20 * MB))
    growth_mb = (rss_kib(app.proc.pid) - before) / 1024
    for response in (declared, chunked):
        assert response.startswith(b"HTTP/1.1 413"), response[:200]
        assert b"connection: close" in response.lower()
    assert declared.endswith(f'{{"message": "request body larger than {LIMIT} bytes"}}'.encode()), declared
    assert sent < 20 * MB, "the server read the whole body"
    assert growth_mb < 32, f"RSS grew {growth_mb:.1f} MB"
    assert not health.failures, health.failures[:5]
    assert max(health.latencies) < 1.0, f"/healthz took up to {max(health.latencies):.2f} s"
    assert app.alive()


def test_a_server_call_up_to_the_limit_runs_and_one_byte_more_is_413(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    """The server sends at most 4 MiB per call: a validly signed call of that size runs. SERVE_MAX_BODY_BYTES
    sets the limit; a body of exactly that many bytes is read (and its HMAC checked), one byte more is 413,
    declared or chunked."""
    limit = 4 * MB + 512 * 1024
    app, _ = secure_app(SERVE_MAX_BODY_BYTES=str(limit))
    fn = "fastapi-app-test-integration"
    message = "m" * ((4 * MB - len(invocation(fn, {"message": ""}))) // 2)  # `event` and `events` carry it
    body = invocation(fn, {"message": message})
    assert 4 * MB - 2 <= len(body) <= 4 * MB
    res = post_serve(app, body, sign(body, app.signing_key))
    assert res.status_code == 200 and json.loads(res.content) == message

    assert post_serve(app, b" " * limit, forged()).status_code == 401  # read to its end, then the HMAC
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(head(forged(), f"Content-Length: {limit + 1}"))
        declared = read_answer(sock)
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(head(forged(), "Transfer-Encoding: chunked"))
        chunked, _ = stream_until_answered(sock, chunks(limit + 1))
    assert chunked.startswith(b"HTTP/1.1 413"), chunked[:200]
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    assert declared.endswith(f'{{"message": "request body larger than {limit} bytes"}}'.encode()), declared


def test_a_forged_body_is_refused_by_its_hmac_before_it_is_parsed(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    """Fresh, well-formed signatures with a wrong MAC: the guard's own 401, byte for byte the answer to a
    request without any signature, logged as a MAC mismatch (the SDK, which parses the body first, is never
    reached). Then, with the key: only the exact bytes signed pass, a re-encoding of the same JSON does not."""
    app, _ = secure_app()
    body = invocation("fastapi-app-test-integration", {"message": "forged"})
    big = b'{"a":[' + b",".join([b'{"k":"v"}'] * (4 * MB // 10)) + b"]}"  # 4 MiB, slow to parse
    refused = [answer(post_serve(app, forged_body, forged())) for forged_body in (body, big)]
    # The first refusal is logged (then one line per 10 s): the guard's HMAC check refused it.
    wait_until(lambda: refusal_lines(app), 5, what="the guard's log line")
    assert "signature does not match" in refusal_lines(app)[0]
    unsigned = answer(post_serve(app, body, None))
    assert unsigned[0] == 401 and refused == [unsigned, unsigned]

    signature = sign(body, app.signing_key)
    reordered = json.dumps(json.loads(body), indent=1).encode()  # the same JSON, other bytes
    assert answer(post_serve(app, reordered, signature)) == unsigned
    assert post_serve(app, body, signature).status_code == 200


def test_unverified_bodies_in_flight_share_one_byte_budget(secure_app: Callable[..., tuple[App, EventSink]]) -> None:
    """Forged bodies, each under the limit and never finished, many at once: together they may hold at most
    SERVE_UNVERIFIED_BUDGET_BYTES before their HMAC is checked. The one that would pass it gets 503 with
    Retry-After (the server retries it) and is closed; once the others end, a signed call runs again."""
    app, _ = secure_app(SERVE_UNVERIFIED_BUDGET_BYTES=str(8 * MB))
    holders = []
    try:
        for _ in range(2):  # 7 MiB held of the 8 MiB budget
            sock = socket.create_connection(("127.0.0.1", app.port), timeout=10)
            sock.sendall(head(forged(), f"Content-Length: {4 * MB}") + b" " * (3 * MB + MB // 2))
            holders.append(sock)
        time.sleep(1)  # let the app read what was sent
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
            sock.sendall(head(forged(), f"Content-Length: {4 * MB}"))
            busy, _ = stream_until_answered(sock, (b" " * 65536 for _ in range(4 * MB // 65536)))
    finally:
        for sock in holders:
            sock.close()
    assert busy.startswith(b"HTTP/1.1 503"), busy[:200]
    assert b"retry-after: 1" in busy.lower() and b"connection: close" in busy.lower()
    body = invocation("fastapi-app-test-integration", {"message": "after"})
    ran = wait_until(
        lambda: post_serve(app, body, sign(body, app.signing_key)).status_code == 200, 10, what="a signed call"
    )
    assert ran and app.alive()
