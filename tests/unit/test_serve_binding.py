"""app.serve_binding: which function a verified body may run, whatever `fnId` the query string names.

The bodies' shapes are those the real server sent for each kind of trigger (tests/real/test_trigger_kinds.py
runs them end to end)."""

from __future__ import annotations

from typing import Any

import pytest

from app.sdk import CRON_EVENT, FAILED_EVENT, INVOKED_EVENT, Callee
from app.serve_binding import ANOTHER_FUNCTION, NOT_A_CALL, Bindings
from tests.standin.protocol import canonical_json

BINDINGS = Bindings(
    [
        Callee("app-order", frozenset({"shop/order.created"})),
        Callee("app-order-failure", frozenset({FAILED_EVENT}), failure_of="app-order"),
        Callee("app-reserve", frozenset({"shop/order.item.reserve"})),
        Callee("app-nightly", frozenset({CRON_EVENT})),
        Callee("app-any-shop", frozenset({"shop/*", "audit/user.*"})),
    ],
    app_id="app",
)


def call(*events: dict[str, Any], batch: list[Any] | None = None) -> bytes:
    return canonical_json({"event": events[0], "events": list(events) if batch is None else batch, "ctx": {}})


def event(name: str, **data: Any) -> dict[str, Any]:
    return {"name": name, "data": data, "id": "01E", "ts": 1}


ORDER = event("shop/order.created", order_id="o1")
INVOKED_NIGHTLY = event(INVOKED_EVENT, _inngest={"fn_id": "app-nightly", "expire": 0})
ORDER_FAILED = event(FAILED_EVENT, function_id="app-order", run_id="01R")


@pytest.mark.parametrize(
    ("query", "body"),
    [
        pytest.param(b"fnId=app-order&stepId=step", call(ORDER), id="its-event"),
        pytest.param(b"fnId=order&stepId=step", call(ORDER), id="id-without-the-app-prefix"),
        pytest.param(b"fnId=app-nightly&stepId=step", call(event(CRON_EVENT, cron="0 3 * * *")), id="cron"),
        pytest.param(b"fnId=app-nightly&stepId=step", call(INVOKED_NIGHTLY), id="invoked"),
        pytest.param(b"fnId=app-order-failure&stepId=step", call(ORDER_FAILED), id="failure-handler"),
        pytest.param(b"fnId=app-any-shop", call(ORDER, event("shop/x")), id="wildcard-batch"),
        pytest.param(b"fnId=app-any-shop", call(event("audit/user.deleted.hard")), id="wildcard-after-dot"),
        pytest.param(b"fnId=app-order", call(ORDER, batch=[]), id="batch-through-the-api"),
        pytest.param(b"fnId=app-order&probe=trust", b"", id="probe-runs-nothing"),
        pytest.param(b"fnId=app-gone&stepId=step", call(ORDER), id="unknown-function-is-the-sdks-404"),
        pytest.param(b"stepId=step", call(ORDER), id="no-fnId-is-the-sdks-error"),
    ],
)
def test_bodies_for_the_function_pass(query: bytes, body: bytes) -> None:
    assert BINDINGS.problem(query, body) is None


@pytest.mark.parametrize(
    ("query", "body"),
    [
        pytest.param(b"fnId=app-reserve&stepId=step", call(ORDER), id="another-functions-event"),
        pytest.param(b"fnId=reserve", call(ORDER), id="another-function-without-the-prefix"),
        pytest.param(b"fnId=app-order&fnId=app-reserve", call(ORDER), id="the-sdk-reads-the-last-fnId"),
        pytest.param(b"fnId=app-%72eserve", call(ORDER), id="percent-encoded"),
        pytest.param(b"fnId=app-order", call(event(CRON_EVENT)), id="cron-event-without-a-cron"),
        pytest.param(b"fnId=app-order", call(INVOKED_NIGHTLY), id="invoked-for-another-function"),
        pytest.param(b"fnId=app-nightly", call(event(INVOKED_EVENT)), id="invoked-naming-no-function"),
        pytest.param(b"fnId=app-order", call(ORDER_FAILED), id="failure-event-at-the-function"),
        pytest.param(
            b"fnId=app-order-failure", call(event(FAILED_EVENT, function_id="app-reserve")), id="others-failure"
        ),
        pytest.param(b"fnId=app-order-failure", call(ORDER), id="failure-handler-with-the-trigger"),
        pytest.param(b"fnId=app-order", call(ORDER, event("shop/other")), id="one-event-of-the-batch"),
        pytest.param(b"fnId=app-any-shop", call(event("shopping/x")), id="wildcard-is-per-segment"),
        pytest.param(b"fnId=app-any-shop", call(event("audit/user")), id="wildcard-needs-a-segment"),
    ],
)
def test_bodies_for_another_function_are_401(query: bytes, body: bytes) -> None:
    assert BINDINGS.problem(query, body) == (401, ANOTHER_FUNCTION)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[" * 100_000,
        b"[]",
        canonical_json({"events": [ORDER]}),
        canonical_json({"event": {"data": {}}, "events": []}),
        canonical_json({"event": ORDER, "events": {"a": ORDER}}),
        canonical_json({"event": ORDER, "events": [ORDER, "x"]}),
    ],
    ids=["empty", "not-json", "too-deep", "not-an-object", "no-event", "nameless", "events-not-a-list", "bad-entry"],
)
def test_signed_bodies_that_are_no_call_are_400(body: bytes) -> None:
    assert BINDINGS.problem(b"fnId=app-order&stepId=step", body) == (400, NOT_A_CALL)
