"""A genuinely signed call replayed at another `fnId` inside the signature window: the query string is not
signed, so the body's events must be ones the named function runs for (app.serve_binding)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.fuzz.harness import APP_ID, App, EventSink, invocation, sign
from tests.security.serve import ledger_rows, post_serve
from tests.standin.protocol import canonical_json, sign_canonical

ANOTHER_FUNCTION = {"message": "Unauthorized: the signed request is for another function"}


def call_of(fn: str, event: dict[str, Any]) -> bytes:
    """A call body of the server's shape for `fn` (its event as `event` and `events`)."""
    doc = json.loads(invocation(f"{APP_ID}-{fn}", {}))
    event = {"id": "01EVT", "ts": 1_700_000_000_000, **event}
    return canonical_json(doc | {"event": event, "events": [event]})


def test_a_signed_call_replayed_at_another_function_is_refused_and_runs_nothing(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    app, sink = secure_app()
    key = app.signing_key
    # Signed for test-integration (no side effect), replayed at reserve-item (a ledger row per run).
    body = call_of("test-integration", {"name": "test/integration", "data": {"message": "m", "sku": "s1"}})
    signature = sign(body, key)
    res = post_serve(app, body, signature, fn="reserve-item")
    assert (res.status_code, res.json()) == (401, ANOTHER_FUNCTION)
    assert res.headers["x-inngest-sdk"].startswith("inngest-py:")
    # The SDK's own lookup accepts the id without the app prefix, and the last of repeated fnIds.
    for fn in ("reserve-item&fnId=reserve-item", f"test-integration&fnId={APP_ID}-reserve-item"):
        assert post_serve(app, body, signature, fn=fn).status_code == 401, fn
    # An invocation of the cron function (the UI's Invoke), and its cron tick, at reserve-item.
    invoked = {"name": "inngest/function.invoked", "data": {"_inngest": {"fn_id": f"{APP_ID}-nightly-cleanup"}}}
    tick = {"name": "inngest/scheduled.timer", "data": {"cron": "TZ=UTC 0 3 * * *"}}
    for event in (invoked, tick):
        other = call_of("nightly-cleanup", event)
        assert post_serve(app, other, sign(other, key), fn="reserve-item").status_code == 401, event["name"]
    assert ledger_rows(app) == 0, "reserve-item ran"

    # The same signed bytes at the function they were signed for run as before.
    res = post_serve(app, body, signature, fn="test-integration")
    assert (res.status_code, res.json()) == (200, "m")
    reserve = call_of("reserve-item", {"name": "shop/order.item.reserve", "data": {"order_id": "o1", "sku": "s1"}})
    res = post_serve(app, reserve, sign(reserve, key), fn="reserve-item")
    assert res.status_code == 206 and res.json()[0]["data"]["sku"] == "s1", res.text  # the step ran
    assert ledger_rows(app) == 1
    assert sink.total() == 0  # nothing reached the event API either


def test_a_signed_body_that_is_no_call_is_400_before_the_sdk(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    app, _ = secure_app()
    for body in (b"[]", b'{"ctx":{}}', b"not json"):
        res = post_serve(app, body, sign_canonical(body, app.signing_key))  # the MAC of these very bytes
        assert res.status_code == 400 and "not a function call" in res.json()["message"], (body, res.text)
