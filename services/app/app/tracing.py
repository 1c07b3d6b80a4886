"""OpenTelemetry traces: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; then the standard OTEL_* variables
(service name, headers, sampler, batch delays) configure the SDK. HTTP in and out is instrumented, and every
function invocation and `step.run` gets its own span carrying inngest.run_id / inngest.function / inngest.step.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace

_tracer = trace.get_tracer("app")
_enabled = False
# The span of the invocation being executed; step spans are its children.
_invocation: contextvars.ContextVar[trace.Span | None] = contextvars.ContextVar("invocation_span", default=None)


def setup_tracing(app: FastAPI, endpoint: str | None) -> None:
    global _enabled, _tracer
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; the exporter the OTEL_EXPORTER_* ones.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "fastapi-inngest-app"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("app")
    # Probes and scrapes would drown the traces that matter.
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics")
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _enabled = True


def start_invocation(run_id: str, function: str, attempt: int) -> None:
    """One span per invocation (child of the server's request span); ended by end_invocation."""
    if not _enabled:
        return
    span = _tracer.start_span(
        f"inngest.function {function}",
        attributes={"inngest.run_id": run_id, "inngest.function": function, "inngest.attempt": attempt},
    )
    _invocation.set(span)


def end_invocation() -> None:
    span = _invocation.get()
    if span is not None:
        span.end()
        _invocation.set(None)


@contextlib.contextmanager
def step_span(step_id: str, run: dict[str, Any]) -> Iterator[None]:
    parent = _invocation.get()
    if not _enabled or parent is None:
        yield
        return
    attributes = {"inngest.run_id": run.get("run_id", ""), "inngest.function": run.get("function", "")}
    with _tracer.start_as_current_span(
        f"inngest.step {step_id}",
        context=trace.set_span_in_context(parent),
        attributes=attributes | {"inngest.step": step_id},
    ):
        yield


def current_trace_id() -> str | None:
    """The trace id of the current span as 32 hex digits (what trace backends search for), if any."""
    if not _enabled:
        return None
    span = _invocation.get() or trace.get_current_span()
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
