"""The serve path's gate: body limit, signature, and the function a signed body may run, before the SDK.

This is the authoritative check of the server's signature. inngest-py parses and canonicalizes the whole
body before it verifies anything (and accepts any timestamp). A request this check passes carries a
`app.sdk.Verified` (the key that matched, primary or fallback, and the body) in its scope under
`app.sdk.VERIFIED_SCOPE_KEY`: on the pinned SDK, `app.sdk.ServeEndpoint` hands the SDK that key instead of
letting it canonicalise and HMAC the body a second time (the SDK signs its answer with it). Outside dev, in
order, each refusal before the SDK sees the request:

1. 401 unless there is exactly one well-formed `t=<unix s>&s=<64 hex>` header whose `t` lies within
   SIGNATURE_MAX_AGE_SECONDS of now (the Go SDK's window is 5 minutes too); the body is not read.
2. 413 once the body passes SERVE_MAX_BODY_BYTES (a declared Content-Length: before reading; chunked: as
   soon as the limit is crossed), and the connection is closed: nothing past the limit is read or kept.
   503 (Retry-After, close) when the bodies read but not yet verified, all requests together, would pass
   SERVE_UNVERIFIED_BUDGET_BYTES: memory stays bounded under many concurrent forged bodies, and the server
   retries a 503.
3. 401 unless HMAC-SHA256(key, body bytes + t) matches `s` for the signing key or the fallback key,
   computed while the body streams in and compared in constant time. The bytes as sent: the server signs
   the JCS-canonical JSON it sends (httpdriver `Sign` over `MarshalV1`'s output), so no parsing is needed,
   and a forged body costs reading it up to the limit plus one HMAC per key. One exception: the server's
   sync ping (a PUT of `{"url": ...}`, deploy `Ping`) is signed by inngestgo `Sign` over the canonical form
   of Go's json.Marshal bytes, which differ when the URL has `&`, `<` or `>`; a small PUT whose bytes do not
   verify is checked once more in that form.
4. For a function call (POST), 400/401 unless the body's events are ones the function named by `fnId` runs
   for (app.serve_binding): the query string is not signed.

In dev (no signatures) only the body limit applies. The 401 for a missing, stale or wrong signature is the
SDK's own (same body, same headers) whichever check failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.sdk import VERIFIED_SCOPE_KEY, Verified, canonical_json, response_headers
from app.serve_binding import Bindings
from app.settings import DEFAULT_SERVE_MAX_BODY_BYTES

log = logging.getLogger("app.serve_guard")

_UNAUTHORIZED = b'{"message": "Unauthorized"}'
_BUSY = b'{"message": "too many unverified request bodies in flight; retry shortly"}'
# The SDK's own identification headers, so the answer looks like the SDK's 401 to any caller.
_SDK_HEADERS = response_headers()
_SIGNATURE = re.compile(rb"t=(\d{1,12})&s=([0-9a-f]{64})")
# A sync ping is a few hundred bytes; only PUTs up to this size get the canonical second look.
CANONICAL_PUT_BYTES = 64 * 1024
# One log line per this many seconds at most: a flood of forged requests must not flood the log.
LOG_EVERY_SECONDS = 10.0


class SignatureGuard:
    def __init__(
        self,
        app: ASGIApp,
        path: str,
        required: bool,
        signing_keys: Sequence[str] = (),
        bindings: Bindings | None = None,
        max_age: float = 300.0,
        max_body: int = DEFAULT_SERVE_MAX_BODY_BYTES,
        budget: int = 64 << 20,
    ) -> None:
        if required and not signing_keys:
            raise ValueError("signature checks need a signing key")
        self.app, self.path, self.required, self.max_age, self.max_body = app, path, required, max_age, max_body
        self.names = list(signing_keys)  # each key as given: what a verified request's scope records
        self.keys = [key.encode() for key in signing_keys]
        self.bindings = bindings
        self._too_large = _message(f"request body larger than {max_body} bytes")
        self.budget, self.held = budget, 0  # bytes read and not yet verified, every request of this worker
        self._logged_at = -LOG_EVERY_SECONDS
        self._refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        signature: tuple[bytes, bytes] | None = None
        if self.required:
            checked = self.signature([v for k, v in scope["headers"] if k == b"x-inngest-signature"])
            if isinstance(checked, str):
                await self._refuse(send, 401, checked)
                return
            signature = checked
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await self._refuse(send, 413, f"declared body of {declared} bytes", self._too_large)
            return
        macs = [hmac.new(key, digestmod=hashlib.sha256) for key in self.keys] if signature else []
        chunks: list[bytes] = []
        size = mine = 0  # mine: what this request adds to `held`
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away: nothing to answer
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await self._refuse(send, 413, f"body over {self.max_body} bytes", self._too_large)
                    return
                if self.held + len(chunk) > self.budget:
                    await self._refuse(send, 503, f"{self.budget} unverified bytes held", _BUSY)
                    return
                self.held += len(chunk)
                mine += len(chunk)
                for mac in macs:
                    mac.update(chunk)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            del chunks
        finally:
            self.held -= mine
        if signature is not None:
            timestamp, given = signature
            key = _first_match(self.names, macs, timestamp, given)
            if key is None and scope["method"] == "PUT" and len(body) <= CANONICAL_PUT_BYTES:
                key = self._canonical_match(body, timestamp, given)
            if key is None:
                await self._refuse(send, 401, "signature does not match")
                return
            if self.bindings is not None and scope["method"] == "POST":
                problem = self.bindings.problem(scope["query_string"], body)
                if problem is not None:
                    status, text = problem
                    await self._refuse(send, status, text, _message(text))
                    return
            scope = {**scope, VERIFIED_SCOPE_KEY: Verified(key, body)}
        await self.app(scope, _replay(body, receive), send)

    def _canonical_match(self, body: bytes, timestamp: bytes, given: bytes) -> str | None:
        """The key whose HMAC of the body's canonical form matches, if that form differs from the body."""
        canonical = canonical_json(body)
        if canonical is None or canonical == body:
            return None
        macs = [hmac.new(key, canonical, hashlib.sha256) for key in self.keys]
        return _first_match(self.names, macs, timestamp, given)

    def signature(self, values: list[bytes]) -> tuple[bytes, bytes] | str:
        """(t, s) of the one well-formed, fresh signature header, or why there is none."""
        if not values:
            return "no signature"
        if len(values) > 1:
            return f"{len(values)} signature headers"
        match = _SIGNATURE.fullmatch(values[0])
        if match is None:
            return "malformed signature"
        timestamp = int(match.group(1))
        if abs(time.time() - timestamp) > self.max_age:
            return f"signature older or newer than {self.max_age:.0f} s"
        return str(timestamp).encode(), match.group(2)

    async def _refuse(self, send: Send, status: int, problem: str, body: bytes = _UNAUTHORIZED) -> None:
        self._note(problem)
        headers = [
            *_SDK_HEADERS,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status in (413, 503):
            headers.append((b"connection", b"close"))  # the rest of the body is never read
        if status == 503:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _note(self, problem: str) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_SECONDS:
            log.warning("serve request refused: %s (%d since the last line)", problem, self._refused)
            self._logged_at, self._refused = now, 0


def _matches(mac: hmac.HMAC, timestamp: bytes, given: bytes) -> bool:
    mac = mac.copy()
    mac.update(timestamp)
    return hmac.compare_digest(mac.hexdigest().encode(), given)


def _first_match(names: Sequence[str], macs: Sequence[hmac.HMAC], timestamp: bytes, given: bytes) -> str | None:
    """The name of the first key whose MAC matches (the signing key before the fallback key)."""
    for name, mac in zip(names, macs, strict=True):
        if _matches(mac, timestamp, given):
            return name
    return None


def _message(text: str) -> bytes:
    return json.dumps({"message": text}).encode()


def _content_length(scope: Scope) -> int | None:
    # The HTTP parser has already refused a malformed or repeated Content-Length (400).
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body, read here already, as the one message the app reads; then the connection's own events."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
