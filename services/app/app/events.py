"""POST /api/events: validate events and send them through the SDK client's shared connection pool."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Annotated, Any

import inngest
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.event_auth import Caller
from app.metrics import record_unreachable_send
from app.sdk import EventApiUnreachable, EventsRejected
from app.sdk import send_events as sdk_send

log = logging.getLogger("app.events")

MAX_BODY_BYTES = 1024 * 1024
EVENTS_PATH = "/api/events"
# Deeper data is refused here (422) rather than by the server after the send (a misleading 502).
MAX_DATA_DEPTH = 64


def _json_number(value: Any) -> Any:
    # JSON Schema `integer` accepts 5 and 5.0, never true/false or "5" (pydantic's lax mode coerces those).
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON number")
    return value


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:  # iterative: a deep value must not exhaust the interpreter's recursion limit
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=256, pattern=r"\S")]
    data: dict[str, Any] = Field(default_factory=dict)
    id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    ts: (
        Annotated[
            # Constraints before the validator: pydantic then publishes them as minimum/maximum in the schema.
            int, Field(ge=0, le=2**63 - 1, description="Unix time in milliseconds"), BeforeValidator(_json_number)
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _sendable(self) -> EventIn:
        if _too_deep(self.data, MAX_DATA_DEPTH):
            raise ValueError(f"data is nested deeper than {MAX_DATA_DEPTH} levels")
        # What the SDK sends must be strict JSON in UTF-8: no NaN/Infinity, no lone surrogates.
        try:
            json.dumps(self.model_dump(), allow_nan=False, ensure_ascii=False).encode()
        except (ValueError, UnicodeEncodeError) as exc:
            raise ValueError("event is not representable as JSON (NaN, Infinity or a lone surrogate)") from exc
        return self


class EventsAccepted(BaseModel):
    ids: list[str]


class Problem(BaseModel):
    detail: str


router = APIRouter()


def event_id(caller: Caller, chosen: str | None) -> str:
    """Every event leaves with an id, so the server deduplicates the SDK's retries of the same send.

    A caller's own id lives in the caller's namespace: it cannot pre-empt an id a workflow uses for dedup.
    """
    return f"{caller.namespace}:{chosen}" if chosen else uuid.uuid4().hex


@router.post(
    EVENTS_PATH,
    response_model=EventsAccepted,
    responses={
        401: {"model": Problem, "description": "Missing or unknown bearer token"},
        403: {"model": Problem, "description": "The token may not send one of these event names"},
        413: {"model": Problem, "description": "Body larger than 1 MiB, or more events than EVENT_API_MAX_BATCH"},
        502: {"model": Problem, "description": "Inngest rejected the events (or accepted none)"},
        503: {"model": Problem, "description": "Inngest unreachable; retry later"},
    },
)
async def send_events(
    body: EventIn | Annotated[list[EventIn], Field(min_length=1)], request: Request
) -> EventsAccepted:
    client: inngest.Inngest = request.app.state.inngest
    caller: Caller = request.state.caller  # set by EventAuth, which refuses requests without one
    events = [body] if isinstance(body, EventIn) else body
    limit: int = request.app.state.event_api_max_batch
    if len(events) > limit:
        raise HTTPException(413, f"at most {limit} events per request (EVENT_API_MAX_BATCH)")
    denied = sorted({e.name for e in events if not caller.may_send(e.name)})
    if denied:
        raise HTTPException(403, f"this token may not send: {', '.join(denied[:5])}")
    payload = [inngest.Event(name=e.name, data=e.data, id=event_id(caller, e.id), ts=e.ts or 0) for e in events]
    # Error bodies name no internal URL and no upstream text: those go to the log.
    try:
        ids = await sdk_send(client, payload)
    except EventApiUnreachable as exc:
        record_unreachable_send(len(payload))
        log.warning("Inngest event API unreachable", extra={"url": client.event_api_origin, "error": str(exc)})
        raise HTTPException(
            503,
            "Inngest event API unreachable; the events may have arrived all the same: retry later, "
            "with an id on each event so that the retry is deduplicated",
            headers={"Retry-After": "5"},
        ) from None
    except EventsRejected as exc:
        hint = ""
        if "event key" in str(exc).lower():  # the server's 401 for a key it does not hold
            hint = "; INNGEST_EVENT_KEY is not one of the server's event keys -> fix: use the server's event key"
        log.warning("Inngest rejected events", extra={"error": str(exc)})
        raise HTTPException(502, f"Inngest rejected the events; see the app logs{hint}") from None
    except (ValueError, json.JSONDecodeError) as exc:
        log.warning("Inngest answered the event send with an invalid response", extra={"error": str(exc)})
        raise HTTPException(502, "Inngest answered with an invalid response; see the app logs") from None
    if not ids:
        log.warning("Inngest accepted none of the events", extra={"sent": len(payload)})
        raise HTTPException(502, "Inngest accepted none of the events; see the app logs")
    return EventsAccepted(ids=ids)


class BodyLimit:
    """413 for bodies over the limit on the event API, checked before the body is parsed."""

    def __init__(self, app: ASGIApp, path: str = EVENTS_PATH, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.path = path
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(send, self.limit)
                return

        received = 0
        too_large = False

        async def limited() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    too_large = True
                    return {"type": "http.disconnect"}  # the app stops reading; nothing is processed
            return message

        async def guarded(message: Message) -> None:
            if not too_large:  # once over the limit, the 413 below is the only answer
                await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not too_large:
                raise
        if too_large:
            await _too_large(send, self.limit)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
