"""The app's one boundary over inngest-py's private modules (`inngest._internal`).

Everything the public `inngest` namespace does not offer lives here, behind typed functions, so an SDK
upgrade touches this module and tests/unit/test_sdk.py, nothing else.
"""

from __future__ import annotations

import contextvars
import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import inngest
import inngest.fast_api
from fastapi import FastAPI
from inngest._internal import comm_lib, const, errors, net, server_lib, transforms
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

SIGNATURE_HEADER = "X-Inngest-Signature"
# The SDK version whose private `transforms.canonicalize` and `net.validate_request_sig` the fast paths below
# replace (tests/unit/test_sdk.py).
FAST_PATH_SDK_VERSION = "0.5.19"
# The ASGI scope key under which app.serve_guard leaves a `Verified` for a request whose signature it checked.
VERIFIED_SCOPE_KEY = "app.serve_guard.verified"


@dataclass(frozen=True, slots=True)
class Verified:
    """The signing key (bare hex, as the guard holds it) whose HMAC matched, and the body object it verified."""

    key: str
    body: bytes


def sign(body: bytes, signing_key: str) -> str:
    """`X-Inngest-Signature` for `body`, exactly as the server signs its requests (t=...&s=...)."""
    signature = net.sign_request(body, signing_key)
    if isinstance(signature, Exception):  # only for a body that is not JSON
        raise signature
    return signature


def canonical_json(body: bytes) -> bytes | None:
    """The RFC 8785 form of a JSON body, as the SDK and the Go signer compute it; None if it is not JSON."""
    canonical = transforms.canonicalize(body)
    return None if isinstance(canonical, Exception) else canonical


def signed_headers(signing_key: str | None, body: bytes = b"") -> dict[str, str]:
    """Headers for a request to the serve endpoint, signed the way the server signs (none in dev)."""
    return {SIGNATURE_HEADER: sign(body, signing_key)} if signing_key else {}


def hash_signing_key(signing_key: str) -> str:
    """The bearer token the server expects from the SDK: hex sha256 of the key's bytes."""
    return transforms.hash_signing_key(signing_key)


# The event the server runs a function with for each kind of trigger (inngest pkg/consts/events.go).
CRON_EVENT = "inngest/scheduled.timer"
INVOKED_EVENT = "inngest/function.invoked"
FAILED_EVENT = "inngest/function.failed"


@dataclass(frozen=True)
class Callee:
    """One id the server may call (`fnId`): a function, or the failure handler the SDK adds for one."""

    id: str
    events: frozenset[str]  # its event triggers (`app/*` style wildcards as written); a cron trigger: CRON_EVENT
    failure_of: str | None = None  # a failure handler: the id of the function whose failures it runs for


def callees(functions: Sequence[inngest.Function[Any]]) -> list[Callee]:
    """Every id the app registers, with the triggers it registers for it (the SDK's own sync payload)."""
    found = []
    for fn in functions:
        config = fn.get_config("http://app.invalid")  # the URL only goes into the configs' step URLs
        names = [t.event if isinstance(t, inngest.TriggerEvent) else CRON_EVENT for t in config.main.triggers]
        found.append(Callee(config.main.id, frozenset(names)))
        if config.on_failure is not None:
            found.append(Callee(config.on_failure.id, frozenset({FAILED_EVENT}), failure_of=config.main.id))
    return found


def response_headers() -> list[tuple[bytes, bytes]]:
    """The SDK's identification headers (lower-case ASGI pairs, no content type), as on its own answers."""
    headers = net.create_headers(env=None, framework=server_lib.Framework.FAST_API, server_kind=None)
    return [(k.lower().encode(), v.encode()) for k, v in headers.items() if k.lower() != "content-type"]


class _NotPlain(ValueError):
    """The body holds something whose JCS form the standard encoder does not reproduce."""


def _plain_int(text: str) -> int:
    value = int(text)
    if -(2**53) < value < 2**53:  # JCS writes numbers as IEEE doubles: beyond 2**53 they lose digits
        return value
    raise _NotPlain(text)


def _not_plain(text: str) -> Any:
    raise _NotPlain(text)  # floats (JCS has its own number format), NaN and Infinity (JCS refuses them)


def _bmp_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JCS sorts keys by UTF-16 code units, Python by code points: the same below the surrogate range.
    for key, _ in pairs:
        if key and max(key) >= "\ud800":
            raise _NotPlain(key)
    return dict(pairs)


_DECODE = json.JSONDecoder(parse_int=_plain_int, parse_float=_not_plain, parse_constant=_not_plain).decode
_DECODE_NON_ASCII = json.JSONDecoder(
    parse_int=_plain_int, parse_float=_not_plain, parse_constant=_not_plain, object_pairs_hook=_bmp_keys
).decode
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_sdk_canonicalize = transforms.canonicalize


def canonicalize(value: bytes) -> bytes | Exception:
    """The RFC 8785 (JCS) form of a JSON body, byte for byte what the SDK's `transforms.canonicalize` returns.

    The SDK canonicalises every request body before checking its HMAC, with a pure-Python encoder (~40 us for
    a 500-byte step request, growing with the body). For bodies without floats, integers beyond 2**53 or keys
    above U+D7FF, the C `json` encoder with sorted keys and no spaces writes the same bytes in a quarter of the
    time; anything else goes to the SDK's own function.
    """
    if not value:
        return value
    try:
        text = value.decode()
        return _ENCODE((_DECODE if value.isascii() else _DECODE_NON_ASCII)(text)).encode()
    except (_NotPlain, ValueError, RecursionError):  # not plain, or not JSON: the SDK decides and says why
        return _sdk_canonicalize(value)


# The request `ServeEndpoint` is handing the SDK, when the guard in front verified its signature.
_verified: contextvars.ContextVar[Verified | None] = contextvars.ContextVar("serve_verified", default=None)
_sdk_validate_request_sig = net.validate_request_sig


def validate_request_sig(
    *,
    body: bytes,
    headers: dict[str, str],
    mode: server_lib.ServerKind,
    signing_key: str | None,
    signing_key_fallback: str | None,
) -> Exception | str | None:
    """The SDK's `net.validate_request_sig`, without its second canonicalisation and HMAC for a request the
    guard (app.serve_guard) verified: the key it matched, primary or fallback, which the SDK signs its answer
    with. Only for the very body `ServeEndpoint` is handing the SDK in this context; anything else, and a
    guard key that is neither of the SDK's, goes through the SDK's own check."""
    verified = _verified.get()
    if verified is not None and verified.body is body and mode is not server_lib.ServerKind.DEV_SERVER:
        for key in (signing_key, signing_key_fallback):
            if key is not None and transforms.remove_signing_key_prefix(key) == verified.key:
                return key
    return _sdk_validate_request_sig(
        body=body, headers=headers, mode=mode, signing_key=signing_key, signing_key_fallback=signing_key_fallback
    )


def install_fast_paths() -> bool:
    """Put `canonicalize` and `validate_request_sig` where the SDK's signature check looks them up, on the SDK
    version they were checked against only: another version keeps its own (public behaviour, slower).
    Returns whether they are installed."""
    if not fast_paths_supported() or not all(
        callable(getattr(module, name, None))
        for module, name in ((transforms, "canonicalize"), (net, "validate_request_sig"))
    ):
        return False
    transforms.canonicalize = canonicalize
    net.validate_request_sig = validate_request_sig
    return True


def fast_paths_supported() -> bool:
    return version("inngest") == FAST_PATH_SDK_VERSION


class ServeEndpoint:
    """The SDK's serve endpoint (GET inspection, POST function calls, PUT sync) as one plain ASGI app.

    `inngest.fast_api.serve` routes the three methods through FastAPI's request handling (a Request object,
    dependency resolution, a validated request model, a Response class): ~60 us a call that this does
    without, handing the SDK's own handler (`CommHandler`) the same request it would get and answering with
    the same status, headers and body as `inngest.fast_api`'s `_to_response`. A request the guard verified
    (its `Verified` in the scope, for the body read here) is not verified again (`validate_request_sig`).
    """

    def __init__(
        self, handler: comm_lib.CommHandler, client: inngest.Inngest, serve_origin: str | None, serve_path: str
    ) -> None:
        self.handler, self.client = handler, client
        self.serve_origin, self.serve_path = serve_origin, serve_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        received = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # one message: the guard's very object
        raw_query = scope["query_string"].decode("latin-1")
        request = comm_lib.CommRequest.model_construct(  # the fields `inngest.fast_api` fills, as it fills them
            body=received,
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            public_path=None,
            query_params=dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True)),
            raw_request=Request(scope, receive),
            request_url=str(URL(scope=scope)),
            serve_origin=self.serve_origin,
            serve_path=self.serve_path,
            is_connect=False,
            timings=net.ServerTimings(),  # given: pydantic inspects a default factory's signature on every call
        )
        verified = scope.get(VERIFIED_SCOPE_KEY)
        token = _verified.set(verified if isinstance(verified, Verified) else None)  # checked against the body
        try:
            method = scope["method"]
            if method == "POST":
                response = await self.handler.post(request)
            elif method == "PUT":
                response = await self.handler.put(request)
            else:
                response = self.handler.get_sync(request)
        finally:
            _verified.reset(token)
        body = transforms.dump_json(response.body)
        if isinstance(body, Exception):
            response = comm_lib.CommResponse.from_error(self.client.logger, body)
            body = json.dumps(response.body)
        content = body.encode()
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        if b"content-length" not in {k for k, _ in headers}:
            headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def serve(
    app: FastAPI,
    client: inngest.Inngest,
    functions: list[inngest.Function[Any]],
    *,
    serve_origin: str | None,
    serve_path: str,
    enable_unauthed_sync: bool,
) -> None:
    """`inngest.fast_api.serve`, through `ServeEndpoint` on the SDK version it was checked against; on any
    other version, or with streaming responses (INNGEST_STREAMING), the SDK's own FastAPI routes."""
    handler = None
    if fast_paths_supported():
        handler = comm_lib.CommHandler(
            client=client,
            enable_unauthed_sync=enable_unauthed_sync,
            framework=server_lib.Framework.FAST_API,
            functions=functions,
            streaming=None,
        )
    if handler is None or handler._streaming is not const.Streaming.DISABLE:
        inngest.fast_api.serve(
            app,
            client,
            functions,
            serve_origin=serve_origin,
            serve_path=serve_path,
            enable_unauthed_sync=enable_unauthed_sync,
        )
        return
    endpoint = ServeEndpoint(handler, client, serve_origin, serve_path)
    app.router.routes.append(Route(serve_path, endpoint, methods=["GET", "POST", "PUT"], include_in_schema=False))


# Set for the duration of one `send_events` call; flipped once the event API's answer arrives.
_answered: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("event_api_answered", default=None)


class _AnswerSeen(inngest.Middleware):
    """The SDK calls `after_send_events` only with a parsed answer, in the sender's context."""

    async def after_send_events(self, result: inngest.SendEventsResult) -> None:
        answered = _answered.get()
        if answered is not None:
            answered.append(True)


def configure_client(client: inngest.Inngest, signing_key_fallback: str | None) -> None:
    """Wire what the client's constructor cannot take: the fallback key, and the answer marker.

    The SDK reads the fallback key only from os.environ; the validated setting replaces it, with a new
    HTTP client that verifies with it.
    """
    if signing_key_fallback != client.signing_key_fallback:
        client._signing_key_fallback = signing_key_fallback
        client._http_client = net.AuthenticatedHTTPClient(
            env=client.env, signing_key=client.signing_key, signing_key_fallback=signing_key_fallback
        )
    client.middleware = [*client.middleware, _AnswerSeen]
    install_fast_paths()


class EventsNotSent(Exception):
    """Base of the two ways `send_events` fails; nothing was accepted."""


class EventApiUnreachable(EventsNotSent):
    """No answer from the event API after the SDK's own retries."""


class EventsRejected(EventsNotSent):
    """The event API answered, and refused the events."""


async def send_events(client: inngest.Inngest, events: Sequence[inngest.Event]) -> list[str]:
    """`client.send`, failing with EventApiUnreachable or EventsRejected: did any answer arrive?"""
    answered: list[bool] = []
    token = _answered.set(answered)
    try:
        return await client.send(list(events))
    except errors.SendEventsError as exc:
        raise (EventsRejected if answered else EventApiUnreachable)(str(exc)) from None
    finally:
        _answered.reset(token)
