"""Who may send events: bearer tokens from EVENT_API_KEYS, each optionally limited to event-name patterns.

`EVENT_API_KEYS=tok1=shop/order.*|test/*,tok2`: tok1 may send names matching either glob, tok2 any name.
Several tokens at once let keys rotate without downtime. Tokens are compared in constant time and never
logged; a caller is identified in logs and event ids only by a short fingerprint of its token.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from fnmatch import fnmatchcase

from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class Caller:
    namespace: str  # prefix of caller-chosen event ids, so they never collide with the workflows' own ids
    patterns: tuple[str, ...] = ()  # empty: any event name

    def may_send(self, name: str) -> bool:
        return not self.patterns or any(fnmatchcase(name, p) for p in self.patterns)


@dataclass(frozen=True)
class _Key:
    token: bytes
    caller: Caller


class EventKeys:
    """The configured tokens; `open` (dev without keys) lets every caller in with one shared namespace."""

    def __init__(self, tokens: list[tuple[str, tuple[str, ...]]], open_: bool = False) -> None:
        self._keys = [
            _Key(token.encode(), Caller(f"api-{hashlib.sha256(token.encode()).hexdigest()[:8]}", patterns))
            for token, patterns in tokens
        ]
        self.open = open_ and not self._keys

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def caller(self, authorization: str | None) -> Caller | None:
        if self.open:
            return Caller("api")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        presented = token.strip().encode("latin-1", "replace")
        found = None
        for key in self._keys:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(presented, key.token):
                found = key.caller
        return found


class EventAuth:
    """401 on the event API without a known bearer token, before the body is read; the caller goes in
    `request.state.caller` for the route's name check and id namespace."""

    def __init__(self, app: ASGIApp, path: str, keys: EventKeys) -> None:
        self.app, self.path, self.keys = app, path, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        values = [v for k, v in scope["headers"] if k == b"authorization"]
        caller = self.keys.caller(values[0].decode("latin-1")) if len(values) == 1 else None
        if caller is None:
            await _unauthorized(send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    body = b'{"detail":"missing or invalid bearer token (EVENT_API_KEYS)"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
