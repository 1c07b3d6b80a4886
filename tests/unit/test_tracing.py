"""OpenTelemetry: the app as a process exports its spans over OTLP/HTTP to a receiver on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support import free_port, wait_until

from .app_process import app_env, running_app
from .conftest import fn_url, run_body, signed


class Receiver:
    """Decodes every OTLP/HTTP protobuf export into plain dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.paths.append(self.path)
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            receiver.spans.append(
                                {
                                    "name": span.name,
                                    "service": service,
                                    "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(),
                                    "parent": span.parent_span_id.hex(),
                                    "attributes": {a.key: _value(a.value) for a in span.attributes},
                                }
                            )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def named(self, name: str) -> dict[str, Any]:
        (span,) = [s for s in self.spans if s["name"] == name]
        return span


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    threading.Thread(target=r.server.serve_forever, daemon=True).start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_spans_per_request_invocation_and_step_reach_the_collector_with_inngest_attributes(
    tmp_path: Path, receiver: Receiver
) -> None:
    port = free_port()
    env = app_env(
        port,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_SERVICE_NAME="shop-api",
        OTEL_BSP_SCHEDULE_DELAY="100",
        LOG_LEVEL="DEBUG",
    )
    base = f"http://127.0.0.1:{port}"
    with running_app(env, tmp_path / "app.log"):
        body = run_body("shop/order.item.reserve", {"order_id": "o1", "sku": "s1"})
        step = httpx.post(base + fn_url("reserve-item"), content=body, headers=signed(body))
        assert step.status_code in (200, 206), step.text
        hello = run_body("test/integration", {"message": "Hello"})
        assert httpx.post(base + fn_url("test-integration"), content=hello, headers=signed(hello)).json() == "Hello"
        wait_until(lambda: any(s["name"] == "inngest.function test-integration" for s in receiver.spans), timeout=30)

    assert set(receiver.paths) == {"/v1/traces"}
    assert {s["service"] for s in receiver.spans} == {"shop-api"}
    function = receiver.named("inngest.function reserve-item")
    step_span = receiver.named("inngest.step reserve")
    assert function["attributes"] == {"inngest.run_id": "01TESTRUN", "inngest.function": "reserve-item"} | {
        "inngest.attempt": 0
    }
    assert step_span["attributes"] == {"inngest.run_id": "01TESTRUN", "inngest.function": "reserve-item"} | {
        "inngest.step": "reserve"
    }
    # One trace: the server's request span -> the invocation -> the step.
    assert step_span["parent"] == function["span_id"] and step_span["trace_id"] == function["trace_id"]
    request = next(s for s in receiver.spans if s["span_id"] == function["parent"])
    assert request["name"].startswith("POST /api/inngest") and request["trace_id"] == function["trace_id"]
    # Probes are not traced (running_app polled /readyz until ready).
    assert not [s for s in receiver.spans if "readyz" in s["name"]]

    # The JSON log line inside the smoke run carries the trace id of its invocation span.
    smoke = receiver.named("inngest.function test-integration")
    lines = [json.loads(line) for line in (tmp_path / "app.log").read_text().splitlines() if line.startswith("{")]
    (record,) = [r for r in lines if r.get("message") == "test/integration received"]
    assert record["trace_id"] == smoke["trace_id"] and record["function"] == "test-integration"


def test_tracing_is_off_without_an_endpoint(tmp_path: Path, receiver: Receiver) -> None:
    port = free_port()
    env = app_env(port, tmp_path, OTEL_BSP_SCHEDULE_DELAY="100", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.url)
    with running_app(env, tmp_path / "app.log"):
        hello = run_body("test/integration", {"message": "Hello"})
        url = f"http://127.0.0.1:{port}" + fn_url("test-integration")
        assert httpx.post(url, content=hello, headers=signed(hello)).json() == "Hello"
    assert receiver.spans == []
