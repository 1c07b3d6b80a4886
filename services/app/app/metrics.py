"""Prometheus metrics: HTTP RED by route template, Inngest work via the SDK's middleware hooks.

/metrics has its own listener on METRICS_PORT (`serve_metrics`), never the app's port: the users' Service
and Ingress carry only the app's. With worker processes (WEB_CONCURRENCY > 1, or dev's reloader) the launcher
points PROMETHEUS_MULTIPROC_DIR at a cleaned directory before any worker imports prometheus_client, and
its listener sums every worker's values on scrape.
"""

from __future__ import annotations

import time
import typing
from pathlib import Path

import inngest
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
    start_http_server,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if typing.TYPE_CHECKING:
    from app.settings import Settings


# `_created` samples double the scrape for no query anyone runs.
disable_created_metrics()  # type: ignore[no-untyped-call]

FUNCTION_INVOCATIONS = Counter(
    "app_inngest_function_invocations",
    "Invocations of Inngest functions by the server, by outcome",
    ["function", "outcome"],
)
FUNCTION_DURATION = Histogram(
    "app_inngest_function_invocation_duration_seconds",
    "Time spent in one invocation (one request from the server)",
    ["function"],
    # Few buckets: this histogram has one series set per function, the bulk of every scrape.
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
STEPS = Counter("app_inngest_steps", "Step executions reported to the server, by opcode", ["function", "op"])
EVENTS_SENT = Counter("app_inngest_events_sent", "Events sent to Inngest, by outcome", ["outcome"])
EVENT_SEND_DURATION = Histogram(
    "app_inngest_event_send_duration_seconds",
    "Latency of one send to the Inngest event API",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SYNC_ATTEMPTS = Counter("app_inngest_sync_attempts", "Sync (registration) attempts, by outcome", ["outcome"])
LAST_SYNC_SUCCESS = Gauge(
    "app_inngest_last_sync_success_timestamp_seconds",
    "Unix time of the last sync the server answered ok: true",
    multiprocess_mode="max",
)
REGISTERED_FUNCTIONS = Gauge(
    "app_inngest_registered_functions", "Functions served by this app", multiprocess_mode="max"
)
# `performed`: the first attempt at a (run, step) did the work; `replayed`: a repeat got the stored result.
SIDE_EFFECTS = Counter("app_side_effects", "Side effects through the ledger, by kind and outcome", ["kind", "outcome"])
BUILD_INFO = Gauge("app_build_info", "Build and mode of the app", ["version", "mode"], multiprocess_mode="max")

# HTTP RED metrics, by route template (never the raw path: unbounded label values), method and status.
HTTP_REQUESTS = Counter(
    "http_requests", "HTTP requests by route template, method and status", ["handler", "method", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration by route template, method and status",
    ["handler", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
_UNTEMPLATED = "none"  # requests that matched no route (404s) share one label value
# Any other method (a client may send any token) shares one label value: the series stay bounded.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_OTHER_METHOD = "other"


class HttpMetrics:
    """Counts and times every request by the route the router matched (add it outermost).

    The router leaves the matched route in the ASGI scope, so labelling costs a dict lookup. (The
    instrumentator library re-matches every route per request: about 60 us of CPU per request here,
    a tenth of a step invocation.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # (counter, histogram) children per label set: `labels()` validates and locks on every call (~3 us a
        # request); the label sets are few (route templates x methods x statuses).
        self.children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            handler = getattr(scope.get("route"), "path", None)
            if handler is None:
                # Answered before routing: the guards in front of the router act on exact, known paths
                # only (401 on the serve path, 413 on the event API); anything else is an unknown path.
                handler = _UNTEMPLATED if status == 404 else scope["path"]
            method = scope["method"] if scope["method"] in _METHODS else _OTHER_METHOD
            labels = (handler, method, str(status))
            pair = self.children.get(labels)
            if pair is None:
                pair = self.children[labels] = (HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
            pair[0].inc()
            pair[1].observe(time.perf_counter() - started)


# Step opcodes that mean "more work was scheduled", as opposed to a finished or failed invocation.
_SCHEDULING_OPS = {"StepRun", "StepPlanned", "Sleep", "WaitForEvent", "InvokeFunction", "AIGateway"}


def _failure_outcome(error: Exception) -> str:
    return "retriable_failure" if getattr(error, "is_retriable", True) else "permanent_failure"


class InngestMetrics(inngest.Middleware):
    """One instance per request from the server (the SDK builds middleware per call)."""

    _started = 0.0
    _function = ""
    _send_started = 0.0
    _send_count = 0

    async def transform_input(
        self,
        ctx: inngest.Context | inngest.ContextSync,
        function: inngest.Function[typing.Any],
        steps: inngest.StepMemos,
    ) -> None:
        self._started = time.perf_counter()
        self._function = function.local_id

    async def transform_output(self, result: inngest.TransformOutputResult) -> None:
        fn = self._function
        if result.step is not None:
            op = result.step.op.value
            STEPS.labels(fn, op).inc()
            if op in _SCHEDULING_OPS:
                outcome = "step_scheduled"
            elif op == "StepError" and result.error is not None:
                outcome = _failure_outcome(result.error)
            else:  # StepFailed: the step exhausted its retries or was non-retriable
                outcome = "permanent_failure"
        elif result.error is not None:
            outcome = _failure_outcome(result.error)
        else:
            outcome = "completed"
        FUNCTION_INVOCATIONS.labels(fn, outcome).inc()
        FUNCTION_DURATION.labels(fn).observe(time.perf_counter() - self._started)

    async def before_send_events(self, events: list[inngest.Event]) -> None:
        self._send_started = time.perf_counter()
        self._send_count = len(events)

    async def after_send_events(self, result: inngest.SendEventsResult) -> None:
        EVENT_SEND_DURATION.observe(time.perf_counter() - self._send_started)
        # The server answers with the ids it accepted; the rest of the batch was rejected.
        accepted = len(result.ids)
        if accepted:
            EVENTS_SENT.labels("ok").inc(accepted)
        if self._send_count > accepted:
            EVENTS_SENT.labels("rejected").inc(self._send_count - accepted)


def record_unreachable_send(count: int) -> None:
    """The SDK calls no middleware when the event API never answered; count those here."""
    EVENTS_SENT.labels("unreachable").inc(count)


def setup_metrics(settings: Settings, function_count: int) -> None:
    BUILD_INFO.labels(settings.app_version, settings.inngest_mode.value).set(1)
    REGISTERED_FUNCTIONS.set(function_count)


def serve_metrics(host: str, port: int, multiprocess_dir: Path | None) -> None:
    """Serve /metrics on `host`:`port` from a daemon thread of this process (the launcher).

    `multiprocess_dir`: the values live in worker processes (see app.server); sum them at every scrape.
    Raises OSError when the port cannot be bound.
    """
    registry = REGISTRY
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)
