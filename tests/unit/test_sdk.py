"""app.sdk against the pinned inngest-py: each private piece it wraps still does what the app relies on.

An SDK upgrade that moves or changes one of them fails here first, next to the one module to fix.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import re
import secrets
import threading
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import inngest
import pytest

from app import sdk
from tests.standin import protocol
from tests.support.ports import free_port

KEY = secrets.token_hex(32)
PYPROJECT = Path(sdk.__file__).parents[1] / "pyproject.toml"


def test_the_sdk_is_the_pinned_version() -> None:
    pinned = re.search(r'"inngest==([^"]+)"', PYPROJECT.read_text())
    assert pinned, "services/app/pyproject.toml pins inngest exactly"
    assert version("inngest") == pinned.group(1)


def test_sign_matches_the_servers_signature() -> None:
    body = json.dumps({"event": {"name": "a", "data": {"b": 1, "a": [1.5, "x"]}}}).encode()
    header = sdk.sign(body, f"signkey-prod-{KEY}")
    ts = int(dict(p.split("=") for p in header.split("&"))["t"])
    assert header == protocol.sign_body(body, KEY, ts)


def test_signed_headers_are_empty_without_a_key() -> None:
    assert sdk.signed_headers(None) == {}
    header = sdk.signed_headers(KEY)["X-Inngest-Signature"]
    assert header == protocol.sign_body(b"", KEY, int(header.split("&")[0][2:]))


def test_hash_signing_key_is_the_servers_bearer_token() -> None:
    assert sdk.hash_signing_key(f"signkey-test-{KEY}") == hashlib.sha256(bytes.fromhex(KEY)).hexdigest()


def test_response_headers_identify_the_sdk() -> None:
    headers = dict(sdk.response_headers())
    assert headers[b"x-inngest-sdk"].startswith(b"inngest-py:v")
    assert headers[b"x-inngest-framework"] == b"fast_api"
    assert b"content-type" not in headers
    assert all(k == k.lower() for k in headers)


def make_client(events_url: str, fallback: str | None = None) -> inngest.Inngest:
    client = inngest.Inngest(
        app_id="sdk-test",
        is_production=True,
        api_base_url=events_url,
        event_api_base_url=events_url,
        event_key="event-key",
        signing_key=KEY,
    )
    sdk.configure_client(client, fallback)
    return client


def test_configure_client_hands_the_fallback_key_to_the_http_client() -> None:
    old = secrets.token_hex(32)
    client = make_client("http://127.0.0.1:1", fallback=old)
    assert client.signing_key_fallback == old
    # The request verification reads the key from the HTTP client the SDK signs and verifies with.
    assert client._http_client._signing_key_fallback == old


class _EventApi(http.server.BaseHTTPRequestHandler):
    answer: tuple[int, dict[str, object]] = (200, {})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status, body = self.answer
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def event_api() -> Iterator[tuple[str, type[_EventApi]]]:
    handler = type("Handler", (_EventApi,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


EVENT = inngest.Event(name="test/integration", data={"message": "Hello"})


def test_send_events_returns_the_ids(event_api: tuple[str, type[_EventApi]]) -> None:
    url, handler = event_api
    handler.answer = (200, {"ids": ["01ID"], "status": 200})
    assert asyncio.run(sdk.send_events(make_client(url), [EVENT])) == ["01ID"]


def test_an_answer_refusing_the_events_is_rejected(event_api: tuple[str, type[_EventApi]]) -> None:
    url, handler = event_api
    handler.answer = (401, {"error": "event key not found", "ids": [], "status": 401})
    with pytest.raises(sdk.EventsRejected, match="event key not found"):
        asyncio.run(sdk.send_events(make_client(url), [EVENT]))


def test_no_answer_at_all_is_unreachable() -> None:
    with pytest.raises(sdk.EventApiUnreachable):
        asyncio.run(sdk.send_events(make_client(f"http://127.0.0.1:{free_port()}"), [EVENT]))
