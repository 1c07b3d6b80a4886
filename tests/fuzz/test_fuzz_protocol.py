"""Malformed and forged calls to the Inngest serve endpoint (`/api/inngest`) of the running app.

What the protocol allows (app/serve_guard.py in front of inngest-py 0.5 `comm_lib/utils.py`
`wrap_handler`): every call is checked against `X-Inngest-Signature` (an HMAC of the body's bytes) before
anything else, so a call without a valid signature gets 401 `{"message": "Unauthorized"}` whatever its body,
method or query. Only a caller holding the signing key can get past that: a signed body that is no function
call is 400, a signed call at a function its events do not trigger 401 (the query is not signed); the SDK
answers an unknown `fnId` with 500 and a JSON `{code, message, name}` (`CommResponse.from_error`): the
server treats a 500 as a failed attempt, so this is contract-sanctioned and checked separately below. An
unaltered replay of a signed call inside the 5-minute window is accepted; any change to its bytes is not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.harness import APP_ID, App, EventSink, Tally, assert_still_serving, fuzz, invocation, sign
from tests.standin.protocol import canonical_json

SERVE = "/api/inngest"
FUNCTIONS = [f"{APP_ID}-{name}" for name in ("test-integration", "process-order", "reserve-item", "nightly-cleanup")]
UNAUTHORIZED = {401}
JSON = {"content-type": "application/json"}
VOLUME_CATEGORIES = {
    f"protocol: {c}"
    for c in (
        "no signature",
        "forged signature",
        "wrong-key signature",
        "altered after signing",
        "bad JSON",
        "huge unsigned body",
    )
}


def json_of(scalars: Any) -> Any:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )


# Signed documents carry no floats (kept simple; the signer itself is full RFC 8785).
exact_json = json_of(st.none() | st.booleans() | st.integers() | st.text(max_size=20))
json_values = json_of(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20))
# What a query string may carry: the known function ids, garbage, or nothing.
queries = st.fixed_dictionaries(
    {},
    optional={
        "fnId": st.sampled_from(FUNCTIONS) | st.text(max_size=30),
        "stepId": st.just("step") | st.text(alphabet="0123456789abcdef", max_size=40),
        "probe": st.just("trust") | st.text(max_size=8),
        "sync_id": st.text(max_size=8),
    },
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_categories=("Cc", "Cs")), max_size=90
)


def valid_body(message: str = "Hello") -> bytes:
    return invocation(f"{APP_ID}-test-integration", {"message": message})


def call(
    http: httpx.Client, body: bytes, headers: dict[str, Any], fn: str | None = None, **params: str
) -> httpx.Response:
    query = {"fnId": fn or f"{APP_ID}-test-integration", "stepId": "step", **params}
    return http.post(SERVE, params=query, content=body, headers={**JSON, **headers})


@pytest.mark.slow
def test_protocol_endpoint_rejects_bad_calls(target: tuple[App, EventSink], client: httpx.Client, tally: Tally) -> None:
    app, _ = target
    key = app.signing_key
    started = time.monotonic()

    # 1. No signature at all: random method, query and body (bytes, JSON, a well-formed invocation).
    @fuzz(260)
    @given(
        method=st.sampled_from(["POST", "PUT", "GET"]),
        query=queries,
        body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()) | st.just(valid_body()),
    )
    def unsigned(method: str, query: dict[str, str], body: bytes) -> None:
        content = body if method != "GET" else None
        tally.call(
            "protocol: no signature",
            UNAUTHORIZED,
            lambda: client.request(method, SERVE, params=query, content=content, headers=JSON),
            f"{method} {query}",
        )

    # 2. Forged signature headers: free text (with non-ASCII) and well-formed `t=..&s=..` with a wrong MAC.
    @fuzz(220)
    @given(
        header=header_text
        | st.builds(
            lambda t, s, extra: f"t={t}&s={s}{extra}",
            st.integers(min_value=-(10**12), max_value=10**12),
            st.text(alphabet="0123456789abcdefABCDEF", max_size=70) | header_text,
            st.sampled_from(["", "&s=00", "&t=1", "&x=y", "&"]),
        ),
    )
    def forged(header: str) -> None:
        headers = {"X-Inngest-Signature": header.encode()}
        tally.call(
            "protocol: forged signature", UNAUTHORIZED, lambda: call(client, valid_body(), headers), repr(header)
        )

    # 3. Signed the right way, with the wrong key (random keys, and the key's neighbours).
    @fuzz(110)
    @given(other=st.binary(min_size=1, max_size=48).map(bytes.hex).filter(lambda k: k != key))
    def wrong_key(other: str) -> None:
        body = valid_body()
        headers = {"X-Inngest-Signature": sign(body, other)}
        tally.call("protocol: wrong-key signature", UNAUTHORIZED, lambda: call(client, body, headers))

    # 4. A validly signed call, altered after signing: steps, event data, ctx, query-visible fields.
    @fuzz(170)
    @given(
        where=st.sampled_from(["steps", "event.data", "ctx.attempt", "ctx.run_id", "events", "use_api", "extra"]),
        value=json_values,
    )
    def altered(where: str, value: Any) -> None:
        body = valid_body()
        signature = sign(body, key, ts=int(time.time()) - 3600)
        doc = json.loads(body)
        if where == "steps":
            doc["steps"][secrets.token_hex(20)] = {"data": value}
        elif where == "event.data":
            doc["event"]["data"]["message"] = json.dumps(value) + "!"
        elif where == "ctx.attempt":
            doc["ctx"]["attempt"] = value if isinstance(value, int) and value != 0 else 7
        elif where == "ctx.run_id":
            doc["ctx"]["run_id"] += "X"
        elif where == "events":
            doc["events"].append({"name": "forged", "data": {"v": value}})
        elif where == "use_api":
            doc["use_api"] = True
        else:
            doc["forged"] = value
        altered_body = json.dumps(doc).encode()
        headers = {"X-Inngest-Signature": signature}
        tally.call("protocol: altered after signing", UNAUTHORIZED, lambda: call(client, altered_body, headers), where)

    # 5. Not JSON at all, with a header carrying the MAC of the raw bytes: verified, then no call (400).
    @fuzz(100)
    @given(raw=st.binary(min_size=1, max_size=200).filter(lambda b: not _is_json(b)))
    def bad_json(raw: bytes) -> None:
        ts = str(int(time.time()))
        mac = hmac.new(key.encode(), raw + ts.encode(), hashlib.sha256).hexdigest()
        headers = {"X-Inngest-Signature": f"t={ts}&s={mac}"}
        tally.call("protocol: bad JSON", {400}, lambda: call(client, raw, headers))

    for step in (unsigned, forged, wrong_key, altered, bad_json):
        step()

    # 6. Huge unsigned bodies: refused (the SDK parses before it checks the header, see the report).
    for size in (1 << 20, (1 << 20) + 1, 8 << 20):
        big = b'{"event":{"name":"x","data":{"pad":"' + b"a" * size + b'"}}}'
        tally.call("protocol: huge unsigned body", UNAUTHORIZED, lambda b=big: call(client, b, {}), f"{size} bytes")

    tally.durations["protocol fuzz"] = time.monotonic() - started
    assert_still_serving(app, tally)
    assert tally.count("protocol:") >= 800, tally.report()
    failures = tally.distinct_failures(*sorted(VOLUME_CATEGORIES))
    assert not failures, "answers outside the contract:\n" + failures


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


@pytest.mark.slow
def test_key_holder_errors_are_the_sdks_500s(target: tuple[App, EventSink], client: httpx.Client, tally: Tally) -> None:
    """With a valid signature: the SDK's own answer to an unknown function, 500 + `{code, message}`
    (contract-sanctioned); a body that is no call, the guard's 400 with a message."""
    app, _ = target

    @fuzz(60)
    @given(
        fn=st.text(min_size=1, max_size=40).filter(lambda f: f not in FUNCTIONS and f"{APP_ID}-{f}" not in FUNCTIONS)
    )
    def unknown_fn(fn: str) -> None:
        body = valid_body()
        res = call(client, body, {"X-Inngest-Signature": sign(body, app.signing_key)}, fn=fn)
        tally.record("protocol: signed, unknown fnId", res, {500})
        if res.status_code == 500:
            assert res.json()["code"] == "function_not_found", res.text
            assert res.headers.get("x-inngest-sdk"), "the SDK answered it"
            assert "x-inngest-signature" in res.headers, "signed call, signed answer"
            # No x-inngest-no-retry: the server retries, which heals a stale function list after a re-sync.
            assert "x-inngest-no-retry" not in res.headers

    @fuzz(60)
    @given(doc=exact_json.filter(lambda v: not isinstance(v, dict) or "ctx" not in v))
    def not_an_invocation(doc: Any) -> None:
        body = canonical_json(doc)
        res = call(client, body, {"X-Inngest-Signature": sign(body, app.signing_key)})
        tally.record("protocol: signed, not an invocation", res, {400})

    unknown_fn()
    not_an_invocation()
    assert_still_serving(app, tally)
    failures = tally.distinct_failures("protocol: signed, unknown fnId", "protocol: signed, not an invocation")
    assert not failures, failures


def test_unaltered_replay_inside_the_window_only(
    target: tuple[App, EventSink], client: httpx.Client, tally: Tally
) -> None:
    """inngest-py checks no timestamp age; the app's guard does (SIGNATURE_MAX_AGE_SECONDS, 5 minutes): the
    same signed call a day later is refused, within the window it runs again (the server's own retries)."""
    app, _ = target
    body = valid_body("replayed")
    stale = sign(body, app.signing_key, ts=int(time.time()) - 86_400)
    assert call(client, body, {"X-Inngest-Signature": stale}).status_code == 401
    signature = sign(body, app.signing_key, ts=int(time.time()) - 60)
    for _ in range(20):
        res = call(client, body, {"X-Inngest-Signature": signature})
        tally.record("protocol: unaltered replay", res, {200})
        assert res.json() == "replayed"
    # The bytes are signed (the server sends its canonical JSON): the same JSON re-encoded is not.
    reordered = json.dumps(json.loads(body), indent=2, sort_keys=False).encode()
    assert call(client, reordered, {"X-Inngest-Signature": signature}).status_code == 401


@pytest.mark.parametrize("header", ["t=1&s=\u00e9", "t=1&s=%C3%A9", "s=" + "\u00e9" * 64])
def test_non_ascii_signature_is_unauthorized(client: httpx.Client, header: str) -> None:
    """A signature that is not ASCII must be a 401 like any other bad signature, not a 500.

    inngest-py compares with `hmac.compare_digest(str, str)`, which raises TypeError for non-ASCII text
    (net.py `_validate_sig`); the app's error handler turns that into 500 "internal error".
    """
    res = call(client, valid_body(), {"X-Inngest-Signature": header.encode()})
    assert res.status_code == 401, f"{res.status_code} {res.text}"


def test_unsigned_large_body_does_not_stall_the_app(target: tuple[App, EventSink]) -> None:
    """An unsigned call must be refused without the app parsing its body first.

    inngest-py canonicalizes (json.loads + JCS) the whole body before it looks for the signature header
    (net.py `validate_request_sig`), synchronously on the event loop, and the serve path has no size limit:
    measured, an unsigned 8 MiB body blocks every other request for ~3 s; 64 MiB for ~32 s, 2.6 GB peak RSS.
    """
    app, _ = target
    body = b'{"a":[' + b",".join([b'{"k":"v"}'] * (8 * (1 << 20) // 10)) + b"]}"
    with (
        httpx.Client(base_url=app.url, timeout=60) as big,
        httpx.Client(base_url=app.url, timeout=60) as small,
        ThreadPoolExecutor(1) as pool,
    ):
        started = time.monotonic()
        pending = pool.submit(lambda: call(big, body, {}))
        time.sleep(0.3)  # the big body has arrived and is being handled
        probe = time.monotonic()
        assert small.get("/healthz").status_code == 200
        health_latency = time.monotonic() - probe
        res = pending.result()
        refused_after = time.monotonic() - started
    assert res.status_code in (401, 413), res.text
    assert health_latency < 0.5, f"/healthz took {health_latency:.1f}s behind an unsigned 8 MiB call"
    assert refused_after < 1.5, f"the unsigned 8 MiB call took {refused_after:.1f}s to refuse"


def test_at_least_1000_bad_inputs_were_tried(tally: Tally) -> None:
    """Last in the directory (files run in name order): the whole bad-input run tried >= 1,000 requests."""
    if not tally.count("events:") or not tally.count("protocol: no signature"):
        pytest.skip("counts the whole tests/fuzz run; run the directory, not a selection")
    assert tally.count() >= 1000, tally.report()
