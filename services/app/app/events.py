"""POST /api/events: validate events and send them through the SDK client's shared connection pool."""

from __future__ import annotations

import json
from typing import Annotated, Any

import inngest
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import record_unreachable_send
from app.sdk import EventApiUnreachable, EventsRejected
from app.sdk import send_events as sdk_send

MAX_BODY_BYTES = 1024 * 1024
EVENTS_PATH = "/api/events"


def _json_number(value: Any) -> Any:
    # JSON Schema `integer` accepts 5 and 5.0, never true/false or "5" (pydantic's lax mode coerces those).
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON number")
    return value


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=256, pattern=r"\S")]
    data: dict[str, Any] = Field(default_factory=dict)
    id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    ts: (
        Annotated[
            int, BeforeValidator(_json_number), Field(ge=0, le=2**63 - 1, description="Unix time in milliseconds")
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _sendable(self) -> EventIn:
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


@router.post(
    EVENTS_PATH,
    response_model=EventsAccepted,
    responses={
        413: {"model": Problem, "description": "Body larger than 1 MiB"},
        502: {"model": Problem, "description": "Inngest rejected the events"},
        503: {"model": Problem, "description": "Inngest unreachable; retry later"},
    },
)
async def send_events(
    body: EventIn | Annotated[list[EventIn], Field(min_length=1)], request: Request
) -> EventsAccepted:
    client: inngest.Inngest = request.app.state.inngest
    events = [body] if isinstance(body, EventIn) else body
    payload = [inngest.Event(name=e.name, data=e.data, id=e.id or "", ts=e.ts or 0) for e in events]
    try:
        ids = await sdk_send(client, payload)
    except EventApiUnreachable:
        record_unreachable_send(len(payload))
        raise HTTPException(
            503,
            f"Inngest event API unreachable at {client.event_api_origin}; nothing was sent, retry later",
            headers={"Retry-After": "5"},
        ) from None
    except EventsRejected as exc:
        hint = ""
        if "event key" in str(exc).lower():  # the server's 401 for a key it does not hold
            hint = "; INNGEST_EVENT_KEY is not one of the server's event keys -> fix: use the server's event key"
        raise HTTPException(502, f"Inngest rejected the events: {exc}{hint}") from None
    except (ValueError, json.JSONDecodeError) as exc:
        raise HTTPException(502, f"Inngest answered with an invalid response: {exc}") from None
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
