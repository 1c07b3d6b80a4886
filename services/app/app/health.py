"""Liveness, readiness and the drain on shutdown.

/healthz is the process only. /readyz never waits for the Inngest server: the server waits for the app
(compose depends_on, k8s init container), so a readiness that needed the server would deadlock.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("app.health")


@dataclass
class Lifecycle:
    mode: str
    functions: int
    ready: bool = False
    draining: bool = False

    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            log.info("shutdown started: readiness now 503")

    def install_drain_on_sigterm(self, drain_seconds: float) -> None:
        """Flip readiness at SIGTERM, keep serving `drain_seconds`, then hand over to the server's handler.

        Load balancers and the compose/k8s health checks see 503 while in-flight and late requests are
        still answered; only then does uvicorn stop accepting and wait for open requests.
        """
        if threading.current_thread() is not threading.main_thread():
            return  # signals belong to the main thread (e.g. not under a test client)
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            if self.draining:
                previous(sig, frame)  # a second SIGTERM: stop now
                return
            self.begin_drain()
            if drain_seconds <= 0:
                previous(sig, frame)
                return

            def later() -> None:
                time.sleep(drain_seconds)
                previous(sig, frame)

            threading.Thread(target=later, name="drain", daemon=True).start()

        signal.signal(signal.SIGTERM, on_sigterm)


class CloseWhileDraining:
    """During the drain every response says `Connection: close`.

    Clients then open a fresh connection for their next request, which lands on another instance
    (or is refused and retried) instead of racing the listener's final close on a reused connection.
    After SHUTDOWN_DRAIN_SECONDS only connections idle for that long remain: keep it above the
    callers' idle keep-alive time.
    """

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.lifecycle.draining:
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)


router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    # The status only: anyone who reaches the port may ask. The sync's details (its errors name internal
    # URLs) go to the log, the metrics port and `python -m app doctor`.
    state: Lifecycle = request.app.state.lifecycle
    status = "draining" if state.draining else ("ready" if state.ready else "starting")
    return JSONResponse({"status": status}, status_code=200 if status == "ready" else 503)
