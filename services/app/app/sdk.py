"""The app's one boundary over inngest-py's private modules (`inngest._internal`).

Everything the public `inngest` namespace does not offer lives here, behind typed functions, so an SDK
upgrade touches this module and tests/unit/test_sdk.py, nothing else.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import inngest
from inngest._internal import errors, net, server_lib, transforms

SIGNATURE_HEADER = "X-Inngest-Signature"


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
