"""The serve path (`/api/inngest`) against forged, stale and malformed signatures: refused before the
body is read, cheaply, with one short log line, and unable to move the sync state or its metrics."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

import httpx

from tests.fuzz.harness import App, EventSink, sign
from tests.security.serve import MB, post_serve, refusal_lines, serve_path
from tests.standin.fixtures import metric_value, rss_kib
from tests.standin.protocol import go_json
from tests.support import wait_until
from tests.support.metrics import scrape

SERVE = serve_path()
SYNC_OUTCOMES = ("ok", "rejected", "unreachable")


def test_signatures_outside_five_minutes_are_refused(secure_app: Callable[..., tuple[App, EventSink]]) -> None:
    app, _ = secure_app()
    body = json.dumps({"event": {"name": "test/integration", "data": {"message": "Hello"}}}).encode()
    for ts in (978_307_200, 9_999_999_999, int(time.time()) - 310, int(time.time()) + 310):  # 2001, 2286, ±310 s
        assert post_serve(app, body, sign(body, app.signing_key, ts=ts)).status_code == 401, ts


def test_malformed_signature_with_20_mb_is_refused_fast_with_bounded_memory(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    app, _ = secure_app()
    assert app.proc is not None
    before = rss_kib(app.proc.pid)
    body_size = 20 * MB
    healthz: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=app.url, timeout=10) as http:
            while not stop.is_set():
                started = time.monotonic()
                assert http.get("/healthz").status_code == 200
                healthz.append(time.monotonic() - started)
                time.sleep(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    wait_until(lambda: len(healthz) >= 3, 10, what="/healthz probes")
    try:
        for signature in ("t=1&s=00", "t=1&s=" + "0" * 64):
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
                head = (
                    f"POST {SERVE} HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\n"
                    f"X-Inngest-Signature: {signature}\r\nContent-Length: {body_size}\r\n\r\n"
                ).encode()
                sock.sendall(head + b"[")
                answer = sock.recv(4096)  # the answer comes before the body is sent
                elapsed = time.monotonic() - started
            assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
            assert elapsed < 1.0, f"{elapsed:.2f} s to refuse"
        probes = len(healthz)
        wait_until(lambda: len(healthz) >= probes + 3, 10, what="/healthz probes after the attack")
    finally:
        stop.set()
        prober.join(10)
    growth_mb = (rss_kib(app.proc.pid) - before) / 1024
    assert growth_mb < 32, f"RSS grew {growth_mb:.1f} MB"
    assert healthz and max(healthz) < 1.0, f"/healthz took up to {max(healthz):.2f} s"


def test_duplicate_or_non_ascii_signature_headers_are_401_with_one_short_line(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    app, _ = secure_app()
    body = b'{"event": {"name": "test/integration", "data": {}}}'
    good = sign(body, app.signing_key)
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
            sock.sendall(
                f"POST {SERVE} HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\n"
                f"X-Inngest-Signature: {good}\r\n".encode()
                + "X-Inngest-Signature: t=1&s=\u00e9\r\n".encode()
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert post_serve(app, body, "t=1&s=\u00e9".encode()).status_code == 401
    time.sleep(0.5)
    log = app.log_path.read_text()
    lines = refusal_lines(app)
    assert 1 <= len(lines) <= 2 and all(len(ln) < 400 for ln in lines), lines  # rate-limited
    assert "Traceback" not in log and "TypeError" not in log


def test_only_a_verified_put_moves_the_sync_state(secure_app: Callable[..., tuple[App, EventSink]]) -> None:
    app, _ = secure_app()
    before = scrape(app.metrics_port)
    for signature in ("", "t=1&s=00", sign(b"", "0" * 64)):  # none, malformed, fresh but the wrong key
        headers = {"X-Inngest-Signature": signature} if signature else {}
        assert httpx.put(f"{app.url}/api/inngest", headers=headers).status_code == 401
    after = scrape(app.metrics_port)
    for outcome in SYNC_OUTCOMES:
        assert metric_value(after, "app_inngest_sync_attempts_total", outcome=outcome) == metric_value(
            before, "app_inngest_sync_attempts_total", outcome=outcome
        )
    assert metric_value(after, "app_inngest_sync_attempts_total") == 0
    assert "sync failed" not in app.log_path.read_text()


def test_the_servers_sync_ping_verifies_in_its_canonical_form_as_a_put_only(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    """The server's sync ping (deploy `Ping`) sends Go's json.Marshal bytes, `&` escaped as \\u0026, and
    signs their RFC 8785 form (inngestgo `Sign`): a PUT gets that second look, a function call never."""
    app, _ = secure_app()
    body = go_json({"url": f"{app.url}/api/inngest?a=1&b=2"})
    signature = sign(body, app.signing_key)  # over the canonical form, as the Go signer does

    def attempts() -> float:
        text = scrape(app.metrics_port)
        return sum(metric_value(text, "app_inngest_sync_attempts_total", outcome=o) for o in SYNC_OUTCOMES)

    before = attempts()
    headers = {"Content-Type": "application/json", "X-Inngest-Signature": signature}
    assert httpx.put(f"{app.url}/api/inngest", content=body, headers=headers, timeout=30).status_code != 401
    assert attempts() == before + 1  # verified: the SDK tried to sync
    headers["X-Inngest-Signature"] = sign(body, "0" * 64)
    assert httpx.put(f"{app.url}/api/inngest", content=body, headers=headers, timeout=30).status_code == 401
    assert post_serve(app, body, signature).status_code == 401
    assert attempts() == before + 1
