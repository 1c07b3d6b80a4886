"""The stand-in's wire helpers agree with the real SDK's implementation (inngest-py `_internal`)."""

from __future__ import annotations

import json
import secrets
import time

import jcs
import pytest
from inngest._internal import net, server_lib, transforms

from tests.standin import protocol

KEY = secrets.token_hex(32)
BODIES = [
    {"event": {"name": "a/b", "data": {"z": 1, "a": [1.5, None, True], "é": "ü"}}, "steps": {}},
    {"n": 1e21, "m": 0.1, "k": -0.0, "big": 12345678901234567890, "s": "\u2028\n"},
    {"b": {"\ud7ff": 1, "\ue000": 2, "a": 3}},
    [1e-7, 1.5e-6, 123.456, -2.5e30, 1e20, 1e22, 0.000001, 5e-324, 1.7976931348623157e308],
]


@pytest.mark.parametrize("body", BODIES)
def test_canonical_json_matches_jcs(body: object) -> None:
    assert protocol.canonical_json(body) == jcs.canonicalize(body)


@pytest.mark.parametrize("key", [KEY, f"signkey-prod-{KEY}", f"signkey-test-{KEY}"])
def test_request_signature_is_accepted_by_the_sdk(key: str) -> None:
    body = json.dumps(BODIES[0], indent=2).encode()  # the SDK canonicalises before checking
    header = protocol.sign_body(body, key)
    ok = net.validate_request_sig(
        body=body,
        headers={"x-inngest-signature": header},
        mode=server_lib.ServerKind.CLOUD,
        signing_key=KEY,
        signing_key_fallback=None,
    )
    assert ok == KEY
    ts = int(time.time())
    assert protocol.sign_body(body, key, ts) == net.sign_request(body, KEY, ts)


def test_wrong_key_is_rejected_by_the_sdk() -> None:
    body = b'{"a":1}'
    ok = net.validate_request_sig(
        body=body,
        headers={"x-inngest-signature": protocol.sign_body(body, secrets.token_hex(32))},
        mode=server_lib.ServerKind.CLOUD,
        signing_key=KEY,
        signing_key_fallback=None,
    )
    assert isinstance(ok, Exception)


def test_sdk_response_signature_verifies() -> None:
    body = b'[{"id": "x", "op": "StepRun", "data": 1}]'
    signature = net.sign_response(body, KEY)
    assert isinstance(signature, str), signature
    assert protocol.verify_response(body, signature, KEY)
    assert not protocol.verify_response(body + b" ", signature, KEY)
    assert not protocol.verify_response(body, None, KEY)


def test_bearer_accepts_the_sdk_hash_and_the_plain_key() -> None:
    assert protocol.hashed_signing_key(KEY) == transforms.hash_signing_key(KEY)
    assert protocol.bearer_ok(f"Bearer {transforms.hash_signing_key(KEY)}", f"signkey-prod-{KEY}")
    assert protocol.bearer_ok(f"Bearer {KEY}", KEY)
    assert not protocol.bearer_ok(f"Bearer {transforms.hash_signing_key(secrets.token_hex(32))}", KEY)
    assert not protocol.bearer_ok(None, KEY)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("500ms", 0.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert protocol.parse_duration(text) == seconds
    if seconds >= 1:  # the SDK's own formatting round-trips
        formatted = transforms.to_duration_str(int(seconds * 1000))
        assert isinstance(formatted, str), formatted
        assert protocol.parse_duration(formatted) == seconds


def test_sleep_until_an_iso_time_from_the_python_sdk() -> None:
    now = time.time()
    until = transforms.to_iso_utc(__import__("datetime").datetime.fromtimestamp(now + 3600))
    assert protocol.sleep_seconds({"name": until}, now=now) == pytest.approx(3600, abs=1)
    assert protocol.sleep_seconds({"opts": {"duration": "10s"}}) == 10


def test_wait_for_event_expression() -> None:
    expr = protocol.interpolate_event("async.data.order_id == event.data.order_id", {"data": {"order_id": "o-1"}})
    assert expr == 'async.data.order_id == "o-1"'
    assert protocol.evaluate(expr, {"async": {"data": {"order_id": "o-1"}}})
    assert not protocol.evaluate(expr, {"async": {"data": {"order_id": "o-2"}}})
    assert not protocol.evaluate(expr, {"async": {"data": {}}})
    assert protocol.evaluate("event.data.n >= 2 && event.data.s == 'x'", {"event": {"data": {"n": 3, "s": "x"}}})
    with pytest.raises(protocol.UnsupportedExpression):
        protocol.evaluate("a || b", {})


def test_ulids_are_sortable_and_unique() -> None:
    ids = [protocol.ulid() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 26 for i in ids)
