"""The ASGI application: `create_app(settings)`, or `create_app()` as a factory reading the environment."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import logging
from collections.abc import AsyncIterator, Sequence

import httpx
from fastapi import FastAPI

from app import __version__, errors, events, health, sdk, tracing
from app.db import async_engine
from app.effects import Ledger
from app.event_auth import EventAuth, EventKeys
from app.functions import build_functions
from app.functions.deps import Builder, Services
from app.inngest_client import build_client
from app.metrics import HttpMetrics, setup_metrics
from app.sdk import callees
from app.serve_binding import Bindings
from app.serve_guard import SignatureGuard
from app.settings import Settings, bare_signing_key, settings_or_exit
from app.sync import SyncObserver, sync_until

log = logging.getLogger("app")
FREEZE_AFTER_READY_SECONDS = 1.0


def create_app(settings: Settings | None = None, builders: Sequence[Builder] | None = None) -> FastAPI:
    settings = settings or settings_or_exit()
    client = build_client(settings)
    # Connects lazily: the app starts (and answers /healthz, /readyz) while the database is still coming up.
    engine = async_engine(settings.database)
    services = Services(
        ledger=Ledger(engine),
        retention=datetime.timedelta(hours=settings.side_effects_retention_hours),
        payment_timeout=datetime.timedelta(seconds=settings.order_payment_timeout),
        cool_off=datetime.timedelta(seconds=settings.order_cool_off),
    )
    functions = (
        [build(client, services) for build in builders] if builders is not None else build_functions(client, services)
    )
    lifecycle = health.Lifecycle(mode=settings.inngest_mode.value, functions=len(functions))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lifecycle.install_drain_on_sigterm(settings.drain_seconds)
        task = asyncio.create_task(_become_ready(app, settings, lifecycle))
        try:
            yield
        finally:
            lifecycle.begin_drain()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await engine.dispose()

    # redirect_slashes=False: a redirect would turn the server's POST into a GET. The schema and its
    # browsers only in dev: elsewhere they would map the API for anyone who reaches the port.
    # FastAPI's own OpenTelemetry layer is off: app.tracing instruments the app when an endpoint is set, and
    # the native layer's check for configured providers (environment lookups on every request) cost ~20 us
    # a request.
    docs = settings.is_dev
    app = FastAPI(
        title="app",
        version=__version__,
        lifespan=lifespan,
        redirect_slashes=False,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.inngest = client  # the event API sends through it (one connection pool)
    app.state.lifecycle = lifecycle  # readiness and drain
    app.state.event_api_max_batch = settings.event_api_max_batch
    event_keys = EventKeys(settings.event_api_tokens, open_=settings.is_dev)
    if not event_keys.configured and not event_keys.open:
        log.warning("event API closed: EVENT_API_KEYS is empty, so every POST %s gets 401", events.EVENTS_PATH)

    sdk.serve(
        app,
        client,
        functions,
        serve_origin=settings.inngest_serve_origin,
        serve_path=settings.inngest_serve_path,
        # In production only a signed PUT may trigger a registration.
        enable_unauthed_sync=settings.is_dev,
    )
    for route in app.routes:  # the SDK's protocol routes are not part of the public API
        if getattr(route, "path", None) == settings.inngest_serve_path:
            route.include_in_schema = False  # type: ignore[attr-defined]
    app.include_router(health.router)
    app.include_router(events.router)
    setup_metrics(settings, len(functions))
    tracing.setup_tracing(app, settings.otel_exporter_otlp_endpoint)
    app.add_middleware(
        SyncObserver,
        path=settings.inngest_serve_path,
        api_base=settings.api_base_url,
        signing_key=settings.signing_key,
    )
    app.add_middleware(events.BodyLimit)
    app.add_middleware(EventAuth, path=events.EVENTS_PATH, keys=event_keys)  # before the body is read
    app.add_middleware(health.CloseWhileDraining, lifecycle=lifecycle)
    fallback = settings.inngest_signing_key_fallback
    app.add_middleware(
        SignatureGuard,
        path=settings.inngest_serve_path,
        required=not settings.is_dev,
        signing_keys=[k for k in (settings.signing_key, fallback and bare_signing_key(fallback)) if k],
        bindings=Bindings(callees(functions), settings.inngest_app_id),
        max_age=settings.signature_max_age_seconds,
        max_body=settings.serve_max_body_bytes,
        budget=settings.serve_unverified_budget_bytes,
    )
    app.add_middleware(HttpMetrics)  # outermost: the guards' 401 and 413 answers are counted too
    errors.install(app)

    return app


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, app, settings: all of startup) out of the collector's reach.

    The SDK leaves ~50 objects in reference cycles per request, so the collector runs all the time; its full
    (oldest-generation) passes walked every object startup made: pauses of 30-150 ms under load, the app's p99.
    Frozen objects are never scanned again, and they are not garbage: nothing is lost (gc.freeze docs).
    """
    gc.collect()
    gc.freeze()


async def _become_ready(app: FastAPI, settings: Settings, lifecycle: health.Lifecycle) -> None:
    """Ready once the serve endpoint answers; then (optionally) register with the server until ok."""
    # In-process calls through the whole ASGI stack: no dependency on how the socket is bound.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.internal", timeout=30) as http:
        # Production mode answers only signed requests, like the server's own.
        headers = sdk.signed_headers(settings.signing_key)
        while not lifecycle.ready:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(settings.inngest_serve_path, headers=headers)).status_code == 200:
                    lifecycle.ready = True
                    break
            await asyncio.sleep(0.05)
        # Shortly after, not now: the collection before the freeze (~50 ms) would hold up the first probes.
        asyncio.get_running_loop().call_later(FREEZE_AFTER_READY_SECONDS, freeze_startup_heap)
        log.info("ready", extra={"mode": settings.inngest_mode.value, "functions": lifecycle.functions})
        if settings.sync_on_startup:
            await sync_until(
                http,
                settings.inngest_serve_path,
                settings.signing_key,
                deadline=None,
                retry_rejected=True,
                api_base=settings.api_base_url,
            )
