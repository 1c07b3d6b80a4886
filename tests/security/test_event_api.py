"""The public event API (`POST /api/events`) against an outsider: who may send, what, how much, and what
the answers give away. The app runs as a process; the Inngest event API is a loopback sink that records
what actually arrived."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx

from tests.fuzz.harness import App, EventSink
from tests.support import wait_until

SHOP = secrets.token_hex(16)  # may send shop/order.* and test/* only
ANY = secrets.token_hex(16)  # may send any name
KEYS = f"{SHOP}=shop/order.*|test/*,{ANY}"


def post(app: App, body: object, token: str | None = None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{app.url}/api/events", json=body, headers=headers, timeout=30)


def test_only_known_tokens_send_and_only_the_names_they_are_allowed(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    app, sink = secure_app(EVENT_API_KEYS=KEYS)
    payment = {"name": "shop/payment.confirmed", "data": {"order_id": "o-1"}}
    assert post(app, payment).status_code == 401
    assert post(app, payment, token="not-a-key-" + secrets.token_hex(8)).status_code == 401
    assert post(app, payment, token=SHOP[:-1]).status_code == 401  # a prefix of a key is not the key
    res = post(app, payment, Authorization=f"Basic {SHOP}")
    assert res.status_code == 401 and res.headers["www-authenticate"] == "Bearer"
    denied = post(app, payment, token=SHOP)
    assert denied.status_code == 403 and "shop/payment.confirmed" in denied.json()["detail"]
    mixed = [{"name": "shop/order.created", "data": {}}, payment]
    assert post(app, mixed, token=SHOP).status_code == 403  # one forbidden name refuses the whole batch
    assert sink.total() == 0, "nothing may reach Inngest from a refused request"

    assert post(app, {"name": "shop/order.created", "data": {}}, token=SHOP).status_code == 200
    assert post(app, payment, token=ANY).status_code == 200  # a token without patterns sends any name
    assert sink.total() == 2
    log = app.log_path.read_text()
    assert SHOP not in log and ANY not in log, "tokens never reach the logs"


def test_caller_chosen_ids_are_namespaced_and_every_event_leaves_with_an_id(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    app, sink = secure_app(EVENT_API_KEYS=KEYS)
    # The id process-order gives its fan-out: a caller must not be able to pre-empt it.
    workflow_id = "reserve-o-1-SKU"
    assert post(app, {"name": "shop/order.item.reserve", "id": workflow_id}, token=ANY).status_code == 200
    assert post(app, {"name": "test/integration"}, token=ANY).status_code == 200
    assert post(app, {"name": "test/integration", "id": workflow_id}, token=SHOP).status_code == 200
    chosen, generated, other = sink.ids
    assert chosen != workflow_id and chosen is not None and chosen.endswith(":" + workflow_id)
    assert other is not None and other.endswith(":" + workflow_id) and other != chosen  # one namespace per token
    assert generated, "an event without an id gets one before the SDK's retries"


def test_batches_are_capped(secure_app: Callable[..., tuple[App, EventSink]]) -> None:
    app, sink = secure_app(EVENT_API_KEYS=ANY, EVENT_API_MAX_BATCH="100")
    batch = [{"name": "test/integration"} for _ in range(101)]
    res = post(app, batch, token=ANY)
    assert res.status_code == 413 and "100" in res.json()["detail"]
    # The 1 MiB body that once carried 69,000 events.
    tiny = [{"name": "a"}] * 69_000
    assert post(app, tiny, token=ANY).status_code == 413
    assert sink.total() == 0
    assert post(app, batch[:100], token=ANY).status_code == 200 and sink.total() == 100


def test_closed_without_keys_outside_dev_and_says_so_once(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    app, sink = secure_app(EVENT_API_KEYS="")
    assert post(app, {"name": "test/integration"}).status_code == 401
    assert post(app, {"name": "test/integration"}, token="anything-at-all-0000").status_code == 401
    lines = [ln for ln in app.log_path.read_text().splitlines() if "event API closed" in ln]
    assert len(lines) == 1 and "EVENT_API_KEYS" in lines[0], lines
    assert sink.total() == 0


def test_nothing_accepted_is_not_a_success(secure_app: Callable[..., tuple[App, EventSink]]) -> None:
    app, sink = secure_app(EVENT_API_KEYS=ANY)
    sink.accept = False
    res = post(app, {"name": "test/integration"}, token=ANY)
    assert res.status_code == 502, res.text


def test_error_answers_name_no_internal_url_or_upstream_text(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    app, sink = secure_app(EVENT_API_KEYS=ANY, INNGEST_EVENT_KEY="not-the-sinks-key")
    rejected = post(app, {"name": "test/integration"}, token=ANY)
    assert rejected.status_code == 502
    assert "127.0.0.1" not in rejected.text and "event key not found" not in rejected.text.lower()
    wait_until(lambda: "event key not found" in app.log_path.read_text(), 5, what="the reason in the log")
    sink.stop()
    down = post(app, {"name": "test/integration"}, token=ANY)
    assert down.status_code == 503 and down.headers["retry-after"]
    assert "127.0.0.1" not in down.text and sink.url not in down.text


def test_data_nested_too_deep_is_422_and_nothing_is_sent(
    secure_app: Callable[..., tuple[App, EventSink]],
) -> None:
    app, sink = secure_app(EVENT_API_KEYS=ANY)
    # Beyond the parser's own recursion limit (5000) the body is unparseable: 400, still nothing sent.
    for depth, status in ((65, 422), (300, 422), (5000, 400)):
        data = '{"d":' * (depth - 1) + "{}" + "}" * (depth - 1)  # as text: too deep for json.dumps here
        body = '{"name": "test/integration", "data": ' + data + "}"
        res = httpx.post(
            f"{app.url}/api/events",
            content=body,
            headers={"Authorization": f"Bearer {ANY}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert res.status_code == status, (depth, res.status_code, res.text[:200])
    assert sink.total() == 0 and app.alive()
    shallow: dict[str, object] = {"d": {}}
    assert post(app, {"name": "test/integration", "data": shallow}, token=ANY).status_code == 200
