"""app.serve_guard's verdict for the app behind it: which key verified the request, for which body object.

The refusals themselves are tested against a running app (tests/security); here only what the guard hands
on in the ASGI scope, which `app.sdk.ServeEndpoint` trusts instead of verifying again.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app import sdk
from app.serve_guard import SignatureGuard
from tests.standin import protocol

KEY, FALLBACK = secrets.token_hex(32), secrets.token_hex(32)
BODY = protocol.canonical_json({"event": {"name": "a/b", "data": {"x": 1}}, "events": [], "ctx": {}})


class Behind:
    """The app behind the guard: what it got in its scope, and the body object it read."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.seen.append((scope.get(sdk.VERIFIED_SCOPE_KEY), message["body"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def through(guard: SignatureGuard, method: str, body: bytes, signature: str | None) -> int:
    headers = {sdk.SIGNATURE_HEADER: signature} if signature else {}

    async def go() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://app") as http:
            return (await http.request(method, "/api/inngest", content=body, headers=headers)).status_code

    return asyncio.run(go())


def guard(required: bool = True) -> tuple[SignatureGuard, Behind]:
    behind = Behind()
    return SignatureGuard(behind, "/api/inngest", required=required, signing_keys=[KEY, FALLBACK]), behind


@pytest.mark.parametrize("method", ["POST", "PUT", "GET"])
@pytest.mark.parametrize("key", [KEY, FALLBACK], ids=["signing-key", "fallback-key"])
def test_a_verified_request_carries_the_key_that_matched_and_its_body(method: str, key: str) -> None:
    gate, behind = guard()
    body = b"" if method == "GET" else BODY
    assert through(gate, method, body, protocol.sign_body(body, key)) == 200
    [(verified, received)] = behind.seen
    assert verified == sdk.Verified(key, body)
    assert verified.body is received  # the very object the app behind reads


def test_the_sync_ping_verified_in_canonical_form_carries_its_key() -> None:
    gate, behind = guard()
    url = {"url": "http://app/api/inngest?a=1&b=2"}
    ping = protocol.go_json(url)
    assert ping != protocol.canonical_json(url)  # its bytes do not verify, their canonical form does
    assert through(gate, "PUT", ping, protocol.sign_body(ping, FALLBACK)) == 200
    [(verified, received)] = behind.seen
    assert verified == sdk.Verified(FALLBACK, ping) and verified.body is received


def test_no_verdict_without_a_verification() -> None:
    gate, behind = guard()
    assert through(gate, "POST", BODY, protocol.sign_body(BODY, secrets.token_hex(32))) == 401
    assert through(gate, "POST", BODY, None) == 401
    assert behind.seen == []  # refused: the app behind never runs
    dev, behind = guard(required=False)
    assert through(dev, "POST", BODY, protocol.sign_body(BODY, KEY)) == 200  # dev: nothing is verified
    assert behind.seen == [(None, BODY)]
