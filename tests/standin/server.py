"""A loopback stand-in for `inngest start` (tests only, never shipped).

It behaves like the real server as described in the Inngest contract notes and the server's sources
(inngest/inngest v1.43.0; the files followed are cited next to the code):
sync polling of `--sdk-url`s, `/fn/register`, `/e/{key}`, and an executor that drives the app with
signed POSTs. Everything is in memory. `/test/*` is an inspection/control API for the tests; it does
not exist on the real server.
"""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.standin import protocol
from tests.standin.control_api import ControlApi
from tests.standin.model import Options

__all__ = ["Options", "StandIn"]


class StandIn(ControlApi):  # ControlApi already combines registration, executor and server API
    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._spawn(self._poll_sdk_urls())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._wire.close()
        await self._ping.close()

    # --- HTTP ------------------------------------------------------------------------------------------

    async def dev_not_found(self, request: Request) -> Response:
        return PlainTextResponse("404 page not found\n", status_code=404)

    def app(self) -> Starlette:
        def auth(handler: Any) -> Any:
            async def wrapped(request: Request) -> Response:
                if not protocol.bearer_ok(request.headers.get("authorization"), self.opts.signing_key):
                    return PlainTextResponse("Authentication failed\n", status_code=401)
                response: Response = await handler(request)
                return response

            return wrapped

        routes = [
            Route("/health", self.health),
            Route("/fn/register", self.register, methods=["POST"]),
            Route("/e/{key}", self.receive_event, methods=["POST"]),
            Route("/metrics", self.metrics),
            # `inngest start` keeps /dev (the dev server's info) behind the signing-key check and then has no
            # such route: 401 "Authentication failed" for a wrong key, Go's plain 404 for the right one.
            # The app's key probe (app/sync.py `signing_key_refused`) relies on exactly that.
            Route("/dev", auth(self.dev_not_found)),
            Route("/v0/runs/{run_id}/batch", auth(self.api_batch)),
            Route("/v0/runs/{run_id}/actions", auth(self.api_actions)),
            Route("/v1/events/{event_id}/runs", auth(self.api_event_runs)),
            Route("/v1/runs/{run_id}", auth(self.api_run)),
            Route("/test/state", self.control_state),
            Route("/test/stats", self.control_stats),
            Route("/test/events", self.control_events),
            Route("/test/runs", self.control_runs),
            Route("/test/summary", self.control_summary),
            Route("/test/runs/{run_id}", self.control_run),
            Route("/test/calls", self.control_calls),
            Route("/test/cron/{fn_id}", self.control_fire_cron, methods=["POST"]),
            Route("/test/sync", self.control_sync, methods=["POST"]),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> Any:
            await self.start()
            yield
            await self.stop()

        return Starlette(routes=routes, lifespan=lifespan)
