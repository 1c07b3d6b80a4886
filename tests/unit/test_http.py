"""The app over HTTP (ASGI, lifespan included): signatures, introspection, event API, health, metrics."""

from __future__ import annotations

import gc
import json
import re
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from starlette.applications import Starlette

from tests.standin.protocol import verify_response
from tests.support import wait_until
from tests.support.metrics import registry_text

from .conftest import SIGNING_KEY, fn_url, run_body, signed

Client = Callable[..., TestClient]


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.mark.parametrize("mode", ["self-hosted", "cloud"])
def test_unsigned_forged_and_wrong_key_posts_are_401(client_factory: Client, mode: str) -> None:
    client = client_factory(mode)
    body = run_body("test/integration", {"message": "Hello"})
    url = fn_url("test-integration")
    forged = signed(body) | {"X-Inngest-Signature": "t=1700000000&s=" + "0" * 64}
    tampered = signed(body)
    attempts = {
        "unsigned": client.post(url, content=body, headers={"Content-Type": "application/json"}),
        "forged": client.post(url, content=body, headers=forged),
        "wrong-key": client.post(url, content=body, headers=signed(body, secrets.token_hex(32))),
        "body-altered-after-signing": client.post(url, content=body.replace(b"Hello", b"Hallo"), headers=tampered),
    }
    for name, resp in attempts.items():
        assert resp.status_code == 401, (name, resp.status_code, resp.text)
        assert resp.json().get("message") or resp.json().get("error"), name


@pytest.mark.parametrize("mode", ["self-hosted", "cloud"])
def test_signed_post_runs_the_function_and_the_response_is_signed(
    client_factory: Client, mode: str, sdk_checks: Counter[str]
) -> None:
    client = client_factory(mode)
    body = run_body("test/integration", {"message": "Hello"})
    headers = signed(body)
    sdk_checks.clear()
    resp = client.post(fn_url("test-integration"), content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "Hello"
    assert resp.headers["x-inngest-sdk"].startswith("inngest-py:")
    assert re.fullmatch(r"t=\d+&s=[0-9a-f]{64}", resp.headers["x-inngest-signature"])
    assert verify_response(resp.content, resp.headers["x-inngest-signature"], SIGNING_KEY)
    assert sdk_checks == {}  # the guard verified it; the SDK did not canonicalise and HMAC it again


@pytest.mark.parametrize("prefix", ["", "signkey-prod-"])
def test_fallback_signing_key_is_accepted_during_rotation(
    client_factory: Client, prefix: str, sdk_checks: Counter[str]
) -> None:
    old_key = secrets.token_hex(32)
    client = client_factory("self-hosted", inngest_signing_key_fallback=prefix + old_key)
    body = run_body("test/integration", {"message": "rotated"})
    headers = signed(body, old_key)
    sdk_checks.clear()
    resp = client.post(fn_url("test-integration"), content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "rotated"
    assert verify_response(resp.content, resp.headers["x-inngest-signature"], old_key)  # answered with that key
    assert not verify_response(resp.content, resp.headers["x-inngest-signature"], SIGNING_KEY)
    assert sdk_checks == {}


def test_dev_mode_accepts_unsigned_calls(client_factory: Client) -> None:
    client = client_factory("dev")
    body = run_body("test/integration", {"message": "Hello"})
    resp = client.post(fn_url("test-integration"), content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200
    assert resp.json() == "Hello"


def test_dev_mode_limits_the_serve_body_too(client_factory: Client) -> None:
    client = client_factory("dev", serve_max_body_bytes=4 << 20)
    resp = client.post(fn_url("test-integration"), content=b" " * ((4 << 20) + 1))
    assert (resp.status_code, resp.json()) == (413, {"message": f"request body larger than {4 << 20} bytes"})


def test_introspection_reports_functions_and_auth(client_factory: Client) -> None:
    client = client_factory("self-hosted")
    unsigned = client.get("/api/inngest")
    assert unsigned.status_code == 401  # production mode answers only the server (signed)
    resp = client.get("/api/inngest", headers=signed(b""))
    assert resp.status_code == 200
    body = resp.json()
    assert body["authentication_succeeded"] is True
    assert body["function_count"] == 4
    assert body["has_signing_key"] is True and body["has_event_key"] is True
    assert body["mode"] == "cloud"  # the SDK's name for production mode


def test_serve_path_is_exact_no_redirects(client_factory: Client) -> None:
    client = client_factory("dev")
    for method in ("GET", "POST", "PUT"):
        resp = client.request(method, "/api/inngest/", follow_redirects=False)
        assert resp.status_code == 404, (method, resp.status_code)  # never a 307 that turns POST into GET


def test_custom_serve_path(client_factory: Client) -> None:
    client = client_factory("dev", inngest_serve_path="/internal/inngest")
    assert client.get("/internal/inngest").status_code == 200
    assert client.get("/api/inngest").status_code == 404


def test_unknown_function_is_a_retriable_not_found(client_factory: Client) -> None:
    """The SDK's contract: 500 without x-inngest-no-retry, so a server with a stale function list retries
    until the next sync instead of failing the run."""
    client = client_factory("self-hosted")
    body = run_body("x", {})
    resp = client.post(fn_url("does-not-exist"), content=body, headers=signed(body))
    assert resp.status_code == 500
    assert resp.json()["code"] == "function_not_found"
    assert "x-inngest-no-retry" not in resp.headers
    assert resp.headers["x-inngest-sdk"].startswith("inngest-py:")


EVENT_CASES: list[tuple[str, Any, int, str]] = [
    ("empty object", {}, 422, "name"),
    ("empty name", {"name": ""}, 422, "name"),
    ("blank name", {"name": "   "}, 422, "name"),
    ("long name", {"name": "x" * 257}, 422, "name"),
    ("data not object", {"name": "a", "data": [1]}, 422, "data"),
    ("data string", {"name": "a", "data": "x"}, 422, "data"),
    ("ts negative", {"name": "a", "ts": -1}, 422, "ts"),
    ("unknown field", {"name": "a", "extra": 1}, 422, "extra"),
    ("empty list", [], 422, ""),
    ("list with bad item", [{"name": "a"}, {"name": ""}], 422, "name"),
    ("number body", 3, 422, ""),
]


@pytest.mark.parametrize(("case", "payload", "status", "mentions"), EVENT_CASES, ids=[c[0] for c in EVENT_CASES])
def test_event_api_validation(client_factory: Client, case: str, payload: Any, status: int, mentions: str) -> None:
    client = client_factory("self-hosted")
    resp = client.post("/api/events", json=payload)
    assert resp.status_code == status, resp.text
    assert mentions in json.dumps(resp.json()["detail"])


def test_event_api_bad_json_and_oversized_bodies(client_factory: Client) -> None:
    client = client_factory("self-hosted")
    bad = client.post("/api/events", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 422 and "json" in bad.text.lower()
    huge = json.dumps({"name": "a", "data": {"blob": "x" * (1024 * 1024)}}).encode()
    resp = client.post("/api/events", content=huge, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and "larger than" in resp.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the limit is enforced while streaming
        for _ in range(20):
            yield b"x" * 65536

    streamed = client.post("/api/events", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


def test_event_api_unreachable_inngest_is_503_without_the_url(client_factory: Client) -> None:
    client = client_factory("self-hosted")
    before = sample("app_inngest_events_sent_total", {"outcome": "unreachable"})
    resp = client.post("/api/events", json={"name": "test/integration", "data": {"message": "Hello"}})
    assert resp.status_code == 503
    assert "127.0.0.1" not in resp.text and "unreachable" in resp.json()["detail"]
    assert resp.headers["retry-after"]
    assert sample("app_inngest_events_sent_total", {"outcome": "unreachable"}) == before + 1


def test_health_and_readiness_then_drain(client_factory: Client) -> None:
    client = client_factory("self-hosted")
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}  # the status only: no mode, functions or sync details
    assert isinstance(client.app, Starlette)
    client.app.state.lifecycle.begin_drain()  # what SIGTERM does (the real signal is tested on a process)
    drained = client.get("/readyz")
    assert drained.status_code == 503 and drained.json() == {"status": "draining"}
    assert drained.headers["connection"] == "close"  # callers stop reusing this instance's connections
    assert "connection" not in ready.headers
    assert client.get("/healthz").status_code == 200  # liveness never follows readiness


def test_metrics_follow_invocations_exactly(client_factory: Client) -> None:
    client = client_factory("self-hosted")
    labels = {"function": "test-integration", "outcome": "completed"}
    before = sample("app_inngest_function_invocations_total", labels)
    duration_before = sample("app_inngest_function_invocation_duration_seconds_count", {"function": "test-integration"})
    body = run_body("test/integration", {"message": "Hello"})
    for _ in range(3):
        assert client.post(fn_url("test-integration"), content=body, headers=signed(body)).status_code == 200
    assert sample("app_inngest_function_invocations_total", labels) == before + 3
    assert sample("app_inngest_function_invocation_duration_seconds_count", {"function": "test-integration"}) == (
        duration_before + 3
    )
    failed = {"function": "test-integration", "outcome": "permanent_failure"}
    failed_before = sample("app_inngest_function_invocations_total", failed)
    bad = run_body("test/integration", {"message": 42})
    resp = client.post(fn_url("test-integration"), content=bad, headers=signed(bad))
    assert resp.status_code == 500 and resp.headers["x-inngest-no-retry"] == "true"
    assert sample("app_inngest_function_invocations_total", failed) == failed_before + 1

    text = registry_text()
    assert 'app_build_info{mode="self-hosted",version=' in text
    assert "app_inngest_registered_functions 4.0" in text
    assert re.search(r'http_requests_total\{handler="/api/inngest",method="POST",status="200"\} \d', text)


def test_step_metrics_for_a_multi_step_run(client_factory: Client) -> None:
    client = client_factory("self-hosted")
    step_labels = {"function": "process-order", "op": "StepRun"}
    before = sample("app_inngest_steps_total", step_labels)
    scheduled = {"function": "process-order", "outcome": "step_scheduled"}
    scheduled_before = sample("app_inngest_function_invocations_total", scheduled)
    body = run_body("shop/order.created", {"order_id": "o1", "customer_id": "c1", "items": [{"sku": "a", "qty": 1}]})
    resp = client.post(fn_url("process-order"), content=body, headers=signed(body))
    assert resp.status_code == 206, resp.text
    ops = resp.json()
    assert ops[0]["op"] == "StepRun" and ops[0]["displayName"] == "validate-order"
    assert sample("app_inngest_steps_total", step_labels) == before + 1
    assert sample("app_inngest_function_invocations_total", scheduled) == scheduled_before + 1


def test_openapi_lists_only_the_public_api(client_factory: Client) -> None:
    paths = client_factory("dev").get("/openapi.json").json()["paths"]
    assert set(paths) == {"/api/events"}
    assert SIGNING_KEY not in json.dumps(paths)


def test_logs_inside_a_step_carry_run_function_and_step(client_factory: Client) -> None:
    import hashlib
    import logging

    from app.logs import _RunContextFilter

    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Capture(level=logging.INFO)
    handler.addFilter(_RunContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        client = client_factory("self-hosted")
        order = {"order_id": "o9", "customer_id": "c", "items": [{"sku": "a", "qty": 1}]}

        def h(name: str) -> str:
            return hashlib.sha1(name.encode()).hexdigest()  # noqa: S324 - the protocol's step id hash

        steps = {
            h("validate-order"): {"data": {"order_id": "o9", "items": [{"sku": "a", "qty": 1}]}},
            h("reserve-items"): {"data": ["id1"]},
            h("wait-for-payment"): {"data": {"name": "shop/payment.confirmed", "data": {"order_id": "o9"}}},
            h("charge-payment"): {"data": {"order_id": "o9", "amount": 1}},
            h("cool-off"): {"data": None},
        }
        body = run_body("shop/order.created", order, steps=steps)
        resp = client.post(fn_url("process-order"), content=body, headers=signed(body))
        assert resp.status_code == 206, resp.text
        assert resp.json()[0]["displayName"] == "ship-order"
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    shipping = [r for r in records if r.getMessage() == "handing the order to the carrier"]
    assert shipping, [r.getMessage() for r in records]
    record = shipping[0]
    assert (record.run_id, record.function, record.step) == ("01TESTRUN", "process-order", "ship-order")  # type: ignore[attr-defined]


def test_http_metrics_label_by_route_template_including_guarded_answers(client_factory: Client) -> None:
    client = client_factory("self-hosted")

    def count(handler: str, method: str, status: str) -> float:
        return sample("http_requests_total", {"handler": handler, "method": method, "status": status})

    before = {
        "unsigned": count("/api/inngest", "POST", "401"),
        "too-large": count("/api/events", "POST", "413"),
        "unknown": count("none", "GET", "404"),
        "ready": count("/readyz", "GET", "200"),
    }
    client.post("/api/inngest?fnId=x", content=b"{}")  # refused before routing (no signature)
    client.post("/api/events", content=b"x" * (1024 * 1024 + 1), headers={"Content-Type": "application/json"})
    client.get("/no/such/path/12345")
    client.get("/readyz")
    assert client.get("/metrics").status_code == 404  # served on METRICS_PORT only
    assert count("/api/inngest", "POST", "401") == before["unsigned"] + 1
    assert count("/api/events", "POST", "413") == before["too-large"] + 1
    assert count("none", "GET", "404") == before["unknown"] + 2  # raw unknown paths never become labels
    assert count("/readyz", "GET", "200") == before["ready"] + 1
    assert sample("http_request_duration_seconds_count", {"handler": "/readyz", "method": "GET", "status": "200"}) >= 1


def test_startup_heap_is_frozen_once_ready(client_factory: Client) -> None:
    """Full collections under load walked every startup object (the app's p99): frozen once the app is ready."""
    gc.unfreeze()
    try:
        client = client_factory("self-hosted")
        wait_until(lambda: client.get("/readyz").status_code == 200, 10, what="/readyz 200")
        # Modules, the app, its routes: everything startup made, a moment after readiness.
        wait_until(lambda: gc.get_freeze_count() > 10_000, 10, what="the startup heap frozen")
    finally:
        gc.unfreeze()
