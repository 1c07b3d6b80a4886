"""app.sdk against the pinned inngest-py: each private piece it wraps still does what the app relies on.

An SDK upgrade that moves or changes one of them fails here first, next to the one module to fix.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import inngest
import inngest.fast_api
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import given, settings
from hypothesis import strategies as st
from inngest._internal import errors, net, server_lib, transforms
from starlette.types import ASGIApp

from app import sdk
from app.serve_guard import SignatureGuard
from tests.standin import protocol
from tests.standin.scripted_registry import FakeRegistry
from tests.support.ports import free_port

KEY = secrets.token_hex(32)
EVENT_KEY = "event-key"
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


def test_canonical_json_is_rfc_8785_and_none_for_anything_else() -> None:
    url = "http://app/?a=1&b=<2>"
    value = {"url": url, "b": [1.5, "é"], "a": None}
    assert sdk.canonical_json(protocol.go_json({"url": url})) == protocol.canonical_json({"url": url})
    assert sdk.canonical_json(json.dumps(value, indent=2).encode()) == protocol.canonical_json(value)
    assert sdk.canonical_json(b"") == b""
    assert sdk.canonical_json(b"not json") is None


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


def make_client(events_url: str, fallback: str | None = None, event_key: str = EVENT_KEY) -> inngest.Inngest:
    client = inngest.Inngest(
        app_id="sdk-test",
        is_production=True,
        api_base_url=events_url,
        event_api_base_url=events_url,
        event_key=event_key,
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


def test_callees_are_what_the_sdk_registers_with_their_triggers() -> None:
    client = make_client("http://127.0.0.1:1")

    async def on_failure(ctx: inngest.Context) -> None:
        return None

    @client.create_function(
        fn_id="mixed",
        trigger=[inngest.TriggerEvent(event="shop/*"), inngest.TriggerCron(cron="0 3 * * *")],
        on_failure=on_failure,
    )
    async def mixed(ctx: inngest.Context) -> None:
        return None

    @client.create_function(fn_id="plain", trigger=inngest.TriggerEvent(event="a/b", expression="event.data.x == 1"))
    async def plain(ctx: inngest.Context) -> None:
        return None

    found = sdk.callees([mixed, plain])
    assert found == [
        sdk.Callee("sdk-test-mixed", frozenset({"shop/*", sdk.CRON_EVENT})),
        sdk.Callee("sdk-test-mixed-failure", frozenset({sdk.FAILED_EVENT}), failure_of="sdk-test-mixed"),
        sdk.Callee("sdk-test-plain", frozenset({"a/b"})),
    ]
    # The ids the SDK's serve handler answers to, and the name its failure trigger waits for.
    assert [mixed.id, mixed.on_failure_fn_id, plain.id] == [c.id for c in found]
    failure = mixed.get_config("http://app").on_failure
    expression = "event.data.function_id == 'sdk-test-mixed'"
    assert failure is not None and failure.triggers == [
        inngest.TriggerEvent(event=sdk.FAILED_EVENT, expression=expression)
    ]


@pytest.fixture
def event_api() -> Iterator[str]:
    registry = FakeRegistry(KEY, EVENT_KEY).start()
    yield registry.url
    registry.stop()


EVENT = inngest.Event(name="test/integration", data={"message": "Hello"})


def test_send_events_returns_the_ids(event_api: str) -> None:
    assert asyncio.run(sdk.send_events(make_client(event_api), [EVENT, EVENT])) == ["id0", "id1"]


def test_an_answer_refusing_the_events_is_rejected(event_api: str) -> None:
    with pytest.raises(sdk.EventsRejected, match="Event key not found"):
        asyncio.run(sdk.send_events(make_client(event_api, event_key="not-the-servers"), [EVENT]))


def test_no_answer_at_all_is_unreachable() -> None:
    with pytest.raises(sdk.EventApiUnreachable):
        asyncio.run(sdk.send_events(make_client(f"http://127.0.0.1:{free_port()}"), [EVENT]))


# --- fast paths over the SDK's internals (pinned to the version they were checked against) -------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(value=JSON, compact=st.booleans())
def test_canonicalize_gives_the_sdks_bytes_for_any_json(value: object, compact: bool) -> None:
    body = json.dumps(value, separators=(",", ":") if compact else None, ensure_ascii=compact).encode()
    assert sdk.canonicalize(body) == sdk._sdk_canonicalize(body)


@pytest.mark.parametrize("body", [b"", b"not json", b'{"a": NaN}', b'{"a": 1', '{"é": 1}'.encode("latin-1")])
def test_canonicalize_leaves_what_is_not_json_to_the_sdk(body: bytes) -> None:
    ours, theirs = sdk.canonicalize(body), sdk._sdk_canonicalize(body)
    assert type(ours) is type(theirs) and str(ours) == str(theirs)


def test_fast_paths_apply_to_the_pinned_sdk_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert version("inngest") == sdk.FAST_PATH_SDK_VERSION
    assert sdk.install_fast_paths() and transforms.canonicalize is sdk.canonicalize
    assert net.validate_request_sig is sdk.validate_request_sig
    monkeypatch.setattr(sdk, "FAST_PATH_SDK_VERSION", "0.0.0")
    monkeypatch.setattr(transforms, "canonicalize", sdk._sdk_canonicalize)
    monkeypatch.setattr(net, "validate_request_sig", sdk._sdk_validate_request_sig)
    assert not sdk.install_fast_paths() and transforms.canonicalize is sdk._sdk_canonicalize
    assert net.validate_request_sig is sdk._sdk_validate_request_sig  # the SDK verifies every request itself
    app = served(sdk.serve)  # another SDK version: its own FastAPI routes
    assert not [r for r in app.routes if isinstance(getattr(r, "app", None), sdk.ServeEndpoint)]
    assert [r for r in app.routes if isinstance(r, APIRoute) and r.path == "/api/inngest"]


def served(
    serve: Any, streaming: bool = False, fallback: str | None = None, barrier: asyncio.Barrier | None = None
) -> FastAPI:
    client = make_client("http://127.0.0.1:1", fallback=fallback)
    client.logger.setLevel("CRITICAL")

    @client.create_function(fn_id="hello", trigger=inngest.TriggerEvent(event="t/hello"))
    async def hello(ctx: inngest.Context) -> dict[str, Any]:
        async def one() -> int:
            if barrier is not None:  # every request of the test is inside the SDK's handler at once
                await asyncio.wait_for(barrier.wait(), 10)
            return 1

        first = await ctx.step.run("first", one)
        return {"message": ctx.event.data.get("message"), "first": first}

    app = FastAPI()
    serve(app, client, [hello], serve_origin="http://app:8000", serve_path="/api/inngest", enable_unauthed_sync=False)
    return app


def call_body(steps: dict[str, Any]) -> bytes:
    event = {"name": "t/hello", "data": {"message": "hé", "n": 1.5}, "id": "01E", "ts": 1_700_000_000_000}
    ctx = {
        "run_id": "01R",
        "attempt": 0,
        "disable_immediate_execution": False,
        "use_api": False,
        "stack": {"stack": list(steps), "current": len(steps)},
    }
    return json.dumps({"event": event, "events": [event], "steps": steps, "use_api": False, "ctx": ctx}).encode()


async def exchange(
    app: FastAPI, method: str, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app:8000") as http:
        res = await http.request(method, url, content=body, headers=headers)
    # The response signature carries the second it was made, Server-Timing the durations; the rest must match
    # byte for byte.
    got = {k: v for k, v in res.headers.items() if k != "x-inngest-signature"}
    if "server-timing" in got:
        got["server-timing"] = re.sub(r";dur=\d+", "", got["server-timing"])
    return res.status_code, got, res.content


def test_serve_endpoint_answers_exactly_as_the_sdks_fastapi_routes() -> None:
    ours, theirs = served(sdk.serve), served(inngest.fast_api.serve)
    assert [r for r in ours.routes if isinstance(getattr(r, "app", None), sdk.ServeEndpoint)]
    first_step = {"first": {"data": 1}}
    url = "/api/inngest?fnId=sdk-test-hello&stepId=step"
    cases = [
        ("POST", url, call_body({}), True),  # runs the first step (206 and its opcode)
        ("POST", url, call_body(first_step), True),  # the step is memoized: the function's result
        ("POST", url, call_body({}), False),  # unsigned: 401
        ("POST", url.replace("hello", "nope"), call_body({}), True),  # unknown function: the SDK's error
        ("POST", url, b"{not json", True),
        ("GET", "/api/inngest", b"", True),  # inspection
        ("GET", "/api/inngest", b"", False),
        ("PUT", "/api/inngest", b"", False),  # unsigned sync: refused
    ]
    for method, path, body, sign_it in cases:
        headers = {"Content-Type": "application/json"}
        if sign_it:  # the server signs the canonical JSON; a body that is not JSON as it is
            signature = sdk.sign(body, KEY) if body != b"{not json" else net.sign_response(body, KEY)
            assert isinstance(signature, str)
            headers[sdk.SIGNATURE_HEADER] = signature
        a = asyncio.run(exchange(ours, method, path, body, headers))
        b = asyncio.run(exchange(theirs, method, path, body, headers))
        assert a == b, (method, path, sign_it)


# --- the SDK's signature check, once the guard in front verified the request ---------------------------

FALLBACK = secrets.token_hex(32)
STEP_URL = "/api/inngest?fnId=sdk-test-hello&stepId=step"


def guarded(guard_keys: Sequence[str] = (KEY, FALLBACK), barrier: asyncio.Barrier | None = None) -> ASGIApp:
    """The app's serve path: the guard, then `ServeEndpoint` with the SDK's keys (the fallback as an operator
    may write it, prefixed)."""
    app = served(sdk.serve, fallback=f"signkey-prod-{FALLBACK}", barrier=barrier)
    return SignatureGuard(app, "/api/inngest", required=True, signing_keys=list(guard_keys))


def canonical_call(steps: dict[str, Any]) -> bytes:
    """A call's body as the server sends it: canonical JSON, whose bytes the guard verifies."""
    return protocol.canonical_json(json.loads(call_body(steps)))


async def call(app: ASGIApp, method: str, url: str, body: bytes, key: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:  # signed as the server signs, without the SDK's code (whose calls are counted)
        headers[sdk.SIGNATURE_HEADER] = protocol.sign_body(body, key)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app:8000") as http:
        return await http.request(method, url, content=body, headers=headers)


@pytest.mark.parametrize("key", [KEY, FALLBACK], ids=["signing-key", "fallback-key"])
@pytest.mark.parametrize("steps", [{}, {"first": {"data": 1}}], ids=["no-step-data", "step-data"])
def test_a_verified_call_is_not_verified_again_and_is_signed_with_the_key_that_matched(
    key: str, steps: dict[str, Any], sdk_checks: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = canonical_call(steps)
    app = guarded()
    res = asyncio.run(call(app, "POST", STEP_URL, body, key))
    assert sdk_checks == {}  # no second canonicalisation, no second HMAC
    assert protocol.verify_response(res.content, res.headers[sdk.SIGNATURE_HEADER], key)
    other = FALLBACK if key == KEY else KEY
    assert not protocol.verify_response(res.content, res.headers[sdk.SIGNATURE_HEADER], other)
    # The same call with the SDK verifying it again: the same answer, after one more canonicalisation and HMAC.
    monkeypatch.setattr(net, "validate_request_sig", sdk._sdk_validate_request_sig)
    before = asyncio.run(call(app, "POST", STEP_URL, body, key))
    assert sdk_checks["canonicalize"] == 1 and sdk_checks["_validate_sig"] == (1 if key == KEY else 2)
    assert protocol.verify_response(before.content, before.headers[sdk.SIGNATURE_HEADER], key)
    assert (res.status_code, res.content) == (before.status_code, before.content)
    assert res.status_code in (200, 206)
    unsigned = {"x-inngest-signature", "server-timing"}
    assert {k: v for k, v in res.headers.items() if k not in unsigned} == {
        k: v for k, v in before.headers.items() if k not in unsigned
    }


def test_verified_inspection_and_sync_are_not_verified_again(sdk_checks: Counter[str]) -> None:
    """GET (inspection) and PUT (sync: the SDK gets the key for an in-band sync) take the key the same way;
    the sync ping whose bytes verify only in canonical form (Go's json.Marshal) too."""
    app = guarded()
    get = asyncio.run(call(app, "GET", "/api/inngest", b"", FALLBACK))
    assert get.status_code == 200 and get.json()["authentication_succeeded"] is True
    assert protocol.verify_response(get.content, get.headers[sdk.SIGNATURE_HEADER], FALLBACK)
    url = "http://app:8000/api/inngest?a=1&b=2"
    ping = protocol.go_json({"url": url})
    assert protocol.canonical_json({"url": url}) != ping
    put = asyncio.run(call(app, "PUT", "/api/inngest", ping, KEY))
    assert put.status_code != 401  # the sync itself fails: no server listens
    assert protocol.verify_response(put.content, put.headers[sdk.SIGNATURE_HEADER], KEY)
    assert sdk_checks["_validate_sig"] == 0  # the guard's canonical look was the only one
    assert sdk_checks["canonicalize"] == 1


def test_without_the_guard_or_its_verdict_the_sdk_still_verifies(sdk_checks: Counter[str]) -> None:
    body = canonical_call({})
    endpoint = served(sdk.serve, fallback=FALLBACK)  # no guard in front: nothing in the scope
    forged = asyncio.run(call(endpoint, "POST", STEP_URL, body, secrets.token_hex(32)))
    assert (forged.status_code, forged.json()) == (401, {"message": "Unauthorized"})
    assert forged.headers["x-inngest-sdk-handled"] == "true"  # the SDK's own refusal
    assert sdk_checks == {"canonicalize": 1, "_validate_sig": 2}  # the SDK's check: primary, then fallback
    ok = asyncio.run(call(endpoint, "POST", STEP_URL, body, FALLBACK))
    assert ok.status_code == 206 and protocol.verify_response(ok.content, ok.headers[sdk.SIGNATURE_HEADER], FALLBACK)
    assert sdk_checks == {"canonicalize": 2, "_validate_sig": 4}
    # A guard holding a key the SDK does not have: its verdict names neither SDK key, so the SDK checks (401).
    stranger = secrets.token_hex(32)
    res = asyncio.run(call(guarded(guard_keys=[stranger]), "POST", STEP_URL, body, stranger))
    assert res.status_code == 401 and sdk_checks["canonicalize"] == 3


def test_a_verdict_counts_for_its_own_body_object_and_mode_only() -> None:
    body = canonical_call({})
    forged = {"x-inngest-signature": f"t={int(time.time())}&s={'0' * 64}"}
    check = functools.partial(
        sdk.validate_request_sig, headers=forged, signing_key=KEY, signing_key_fallback=f"signkey-prod-{FALLBACK}"
    )
    prod, dev = server_lib.ServerKind.CLOUD, server_lib.ServerKind.DEV_SERVER
    assert isinstance(check(body=body, mode=prod), errors.SigVerificationFailedError)  # no verdict: the SDK's
    for key, returned in ((KEY, KEY), (FALLBACK, f"signkey-prod-{FALLBACK}")):
        token = sdk._verified.set(sdk.Verified(key, body))
        try:
            assert check(body=body, mode=prod) == returned  # the SDK's key as the SDK holds it
            equal = bytes(bytearray(body))  # the same bytes, another object: not the request the guard passed
            assert equal == body and equal is not body
            assert isinstance(check(body=equal, mode=prod), errors.SigVerificationFailedError)
            assert check(body=body, mode=dev) is None  # dev: the SDK's own answer
        finally:
            sdk._verified.reset(token)
    assert sdk._verified.get() is None


def test_concurrent_calls_with_different_keys_keep_their_own(sdk_checks: Counter[str]) -> None:
    body = canonical_call({})
    keys = [KEY, FALLBACK] * 4

    async def all_at_once() -> list[httpx.Response]:
        app = guarded(barrier=asyncio.Barrier(len(keys)))  # each call waits inside the SDK for all the others
        return await asyncio.gather(*(call(app, "POST", STEP_URL, body, key) for key in keys))

    responses = asyncio.run(all_at_once())
    for key, res in zip(keys, responses, strict=True):
        assert res.status_code == 206
        assert protocol.verify_response(res.content, res.headers[sdk.SIGNATURE_HEADER], key)
        assert not protocol.verify_response(
            res.content, res.headers[sdk.SIGNATURE_HEADER], ({KEY, FALLBACK} - {key}).pop()
        )
    assert sdk_checks == {}
