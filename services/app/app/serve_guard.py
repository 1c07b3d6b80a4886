"""401 on the serve path before the SDK reads the body, for signatures that cannot be valid.

inngest-py parses the whole body before it looks at the signature, accepts any timestamp, and raises
TypeError on a non-ASCII signature (a 500). Outside dev this guard answers, as the SDK answers a bad
signature, every request without exactly one well-formed `t=<unix s>&s=<64 hex>` header whose `t` lies
within SIGNATURE_MAX_AGE_SECONDS of now (the Go SDK's window is 5 minutes too). The HMAC itself is then
the SDK's check.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from app.sdk import response_headers

log = logging.getLogger("app.serve_guard")

_UNAUTHORIZED = b'{"message": "Unauthorized"}'
# The SDK's own identification headers, so the answer looks like the SDK's 401 to any caller.
_SDK_HEADERS = response_headers()
_SIGNATURE = re.compile(rb"t=(\d{1,12})&s=[0-9a-f]{64}")
# One log line per this many seconds at most: a flood of forged requests must not flood the log.
LOG_EVERY_SECONDS = 10.0


class SignatureGuard:
    def __init__(self, app: ASGIApp, path: str, required: bool, max_age: float = 300.0) -> None:
        self.app, self.path, self.required, self.max_age = app, path, required, max_age
        self._logged_at = -LOG_EVERY_SECONDS
        self._refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and self.required:
            problem = self.problem([v for k, v in scope["headers"] if k == b"x-inngest-signature"])
            if problem:
                self._note(problem)
                headers = [
                    *_SDK_HEADERS,
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                ]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": _UNAUTHORIZED})
                return
        await self.app(scope, receive, send)

    def problem(self, values: list[bytes]) -> str | None:
        if not values:
            return "no signature"
        if len(values) > 1:
            return f"{len(values)} signature headers"
        match = _SIGNATURE.fullmatch(values[0])
        if match is None:
            return "malformed signature"
        if abs(time.time() - int(match.group(1))) > self.max_age:
            return f"signature older or newer than {self.max_age:.0f} s"
        return None

    def _note(self, problem: str) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_SECONDS:
            log.warning("serve request refused: %s (%d since the last line)", problem, self._refused)
            self._logged_at, self._refused = now, 0
