"""401 on the serve path before the SDK reads the body, for requests the SDK would mishandle.

inngest-py parses the whole body before it looks for the signature header (a large unsigned body
blocks the event loop), and raises TypeError on a non-ASCII signature (hmac.compare_digest on str),
which becomes a 500 and a dropped connection. Both are answered here as the SDK answers a bad signature.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from app.sdk import response_headers

_UNAUTHORIZED = b'{"message": "Unauthorized"}'
# The SDK's own identification headers, so the answer looks like the SDK's 401 to any caller.
_SDK_HEADERS = response_headers()


class SignatureGuard:
    def __init__(self, app: ASGIApp, path: str, required: bool) -> None:
        self.app, self.path, self.required = app, path, required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            value = next((v for k, v in scope["headers"] if k == b"x-inngest-signature"), None)
            params = parse_qs(value.decode("latin-1")) if value is not None else {}
            readable = all(x.isascii() for xs in params.values() for x in xs)
            if (value is None and self.required) or not readable:
                headers = [
                    *_SDK_HEADERS,
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                ]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": _UNAUTHORIZED})
                return
        await self.app(scope, receive, send)
