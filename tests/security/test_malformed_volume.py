"""3,000 malformed requests against one app: each gets its 4xx with a message, the app keeps serving, and
none of the random function ids or paths becomes a metric label (no new series after the first of each kind).

Deterministic (a seeded generator), unlike the hypothesis runs in tests/fuzz, and fast enough for every run.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import string
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fuzz.harness import APP_ID, App, Tally, assert_still_serving, invocation, running_app, sign
from tests.security.serve import forged
from tests.standin.protocol import canonical_json, sign_canonical
from tests.support.metrics import scrape

TOTAL = 3_000
SERVE = "/api/inngest"
EVENTS = "/api/events"
FUNCTIONS = ["test-integration", "process-order", "reserve-item", "nightly-cleanup"]
TRIGGERS = {"test-integration": "test/integration", "process-order": "shop/order.created"}
Request = tuple[str, str, dict[str, Any], bytes | None, dict[bytes, bytes]]  # method, path, query, body, headers
Kind = Callable[[random.Random, App], Request]
JSON = {b"content-type": b"application/json"}
NO_SPACE = string.ascii_letters + string.digits + "-_./%=&é"  # header values: no surrounding blanks


def text(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits + "-_./%é ") -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, n)))


def json_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(6 if depth < 3 else 4)
    if kind == 0:
        return rng.randint(-(10**12), 10**12)
    if kind == 1:
        return text(rng, 12)
    if kind == 2:
        return rng.choice([None, True, False])
    if kind == 3:
        return rng.random()
    if kind == 4:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {text(rng, 6): json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def random_fn(rng: random.Random) -> str:
    return rng.choice([f"{APP_ID}-{rng.choice(FUNCTIONS)}", text(rng, 30), f"{APP_ID}-{text(rng, 12)}"])


def unsigned(rng: random.Random, app: App) -> Request:
    method = rng.choice(["POST", "PUT", "GET", "PATCH", "DELETE"])
    body = rng.choice([rng.randbytes(rng.randint(0, 300)), json.dumps(json_value(rng)).encode()])
    return method, SERVE, {"fnId": random_fn(rng), "stepId": "step"}, body, JSON


def forged_signature(rng: random.Random, app: App) -> Request:
    header = rng.choice([forged(), forged(int(time.time()) - 3600), text(rng, 80, NO_SPACE), f"t={text(rng, 12)}&s=00"])
    body = invocation(random_fn(rng), {"message": text(rng, 20)})
    return "POST", SERVE, {"fnId": random_fn(rng)}, body, JSON | {b"x-inngest-signature": header.encode()}


def signed_no_call(rng: random.Random, app: App) -> Request:
    body = rng.choice([rng.randbytes(rng.randint(1, 200)), json.dumps([json_value(rng)]).encode(), b"{}"])
    fn = f"{APP_ID}-{rng.choice(FUNCTIONS)}"
    return (
        "POST",
        SERVE,
        {"fnId": fn},
        body,
        JSON | {b"x-inngest-signature": sign_canonical(body, app.signing_key).encode()},
    )


def signed_for_another(rng: random.Random, app: App) -> Request:
    """A genuine call of one function at another (test-integration's or process-order's event elsewhere)."""
    own = rng.choice(sorted(TRIGGERS))
    doc = json.loads(invocation(f"{APP_ID}-{own}", {"n": rng.randint(0, 10**6)}))
    event = doc["event"] | {"name": TRIGGERS[own]}
    body = canonical_json(doc | {"event": event, "events": [event]})
    other = rng.choice([f for f in FUNCTIONS if f != own])
    return (
        "POST",
        SERVE,
        {"fnId": f"{APP_ID}-{other}"},
        body,
        JSON | {b"x-inngest-signature": sign(body, app.signing_key).encode()},
    )


def events_unauthorized(rng: random.Random, app: App) -> Request:
    auth = rng.choice([b"", f"Bearer {secrets.token_hex(16)}".encode(), b"Basic eDp5", b"Bearer"])
    headers = JSON | ({b"authorization": auth} if auth else {})
    return "POST", EVENTS, {}, json.dumps({"name": "test/integration", "data": {}}).encode(), headers


def events_bad_body(rng: random.Random, app: App) -> Request:
    body = rng.choice(
        [
            rng.randbytes(rng.randint(1, 200)),
            json.dumps(json_value(rng)).encode(),
            json.dumps({"name": rng.choice(["", " ", 5, None]), "data": json_value(rng)}).encode(),
            json.dumps({"name": "x", "data": {}, text(rng, 8): 1}).encode(),
        ]
    )
    return "POST", EVENTS, {}, body, JSON | {k.lower().encode(): v.encode() for k, v in app.auth.items()}


def unknown_path(rng: random.Random, app: App) -> Request:
    path = "/x-" + "/".join(
        text(rng, 12, string.ascii_letters + string.digits + "-_.~") for _ in range(rng.randint(1, 3))
    )
    return rng.choice(["GET", "POST", "PUT", "DELETE"]), path, {"fnId": random_fn(rng)}, None, {}


def wrong_method(rng: random.Random, app: App) -> Request:
    return rng.choice(["POST", "PUT", "DELETE", "PATCH"]), rng.choice(["/healthz", "/readyz"]), {}, None, {}


KINDS: dict[str, tuple[Kind, set[int]]] = {
    "serve: unsigned": (unsigned, {401}),
    "serve: forged signature": (forged_signature, {401}),
    "serve: signed, no call": (signed_no_call, {400}),
    "serve: signed for another function": (signed_for_another, {401}),
    "events: unauthorized": (events_unauthorized, {401}),
    "events: bad body": (events_bad_body, {400, 422}),
    "unknown path": (unknown_path, {404}),
    "wrong method": (wrong_method, {405}),
}


def series(app: App) -> set[str]:
    """Every series /metrics exposes (name and labels, without the value)."""
    lines = scrape(app.metrics_port).splitlines()
    return {line.rsplit(" ", 1)[0] for line in lines if line and not line.startswith("#")}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("volume")) as (started, _):
        yield started


def send(http: httpx.Client, tally: Tally, category: str, allowed: set[int], request: Request) -> None:
    method, path, query, body, headers = request
    tally.call(category, allowed, lambda: http.request(method, path, params=query, content=body, headers=headers))


def test_3000_malformed_requests_are_4xx_and_add_no_metric_series(app: App) -> None:
    rng = random.Random(20_261_203)
    tally = Tally()
    kinds = sorted(KINDS)
    with httpx.Client(base_url=app.url, timeout=30) as http:
        for n in range(TOTAL):
            if n == TOTAL // 2:  # by now each kind's (route, method, status) series exist
                before = series(app)
            category = rng.choice(kinds)
            kind, allowed = KINDS[category]
            send(http, tally, category, allowed, kind(rng, app))
    assert tally.count() == TOTAL and len(tally.statuses) == len(KINDS), tally.report()
    assert not tally.failures, "answers outside 4xx-with-a-message:\n" + tally.distinct_failures()
    after = series(app)
    assert after == before, f"new series: {sorted(after - before)[:10]}"
    handlers = set(re.findall(r'handler="([^"]*)"', " ".join(after)))
    assert handlers <= {SERVE, EVENTS, "/healthz", "/readyz", "none"}, handlers  # no raw path, no fnId
    assert_still_serving(app, tally)
    assert app.unhandled_errors() == 0, app.log_tail()
