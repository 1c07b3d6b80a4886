"""Bad input on the public event API (`POST /api/events`), generated from the app's own OpenAPI schema.

Contract (SPEC, app/events.py): 200 `{"ids": [...]}`; 400/422 validation with a message; 413 over 1 MiB;
503 + Retry-After when Inngest is unreachable; 502 when Inngest rejected the events. Here the event API is
a loopback sink, so every accepted event can be counted on the receiving side: the ids the app reports
must be exactly the events that arrived (nothing reported as sent that was not).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from tests.fuzz.harness import App, EventSink, Tally, assert_still_serving, fuzz, openapi_schema

EVENTS = "/api/events"
MIB = 1 << 20
REJECTED = {400, 422}
JSON = {"content-type": "application/json"}


def accepted_ids(res: httpx.Response, sent: Any) -> list[str]:
    ids = res.json()["ids"]
    assert isinstance(ids, list) and all(isinstance(i, str) and i for i in ids), res.text
    assert len(ids) == (len(sent) if isinstance(sent, list) else 1), (sent, res.text)
    return list(ids)


@pytest.mark.slow
def test_openapi_generated_requests(target: tuple[App, EventSink], tally: Tally) -> None:
    """schemathesis: negative cases (schema-invalid bodies, types, media types) and positive ones."""
    app, sink = target
    assert httpx.get(f"{app.url}/openapi.json").status_code == 404  # not served outside dev
    schema = schemathesis.openapi.from_dict(openapi_schema(app.log_path.parent))
    schema.config.update(base_url=app.url)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert [(op.method.upper(), op.path) for op in operations] == [("POST", EVENTS)], "the public routes changed"
    operation = schema[EVENTS]["POST"]
    started = time.monotonic()
    reported = 0
    before = sink.total()

    @fuzz(150)
    @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    def negative(case: Any) -> None:
        res = tally.call(
            "events: openapi negative",
            REJECTED | {413},
            lambda: case.call(timeout=30, headers=app.auth),
            repr(case.body)[:120],
        )
        if res is not None and res.status_code < 300:  # a schema-invalid body accepted: a failure (recorded)
            nonlocal reported
            reported += len(res.json().get("ids", []))  # it was sent: keep the sent/received books right

    @fuzz(100)
    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def positive(case: Any) -> None:
        nonlocal reported
        # 422 is allowed for the few strings where JSON Schema's (ECMA) `\S` and Python's differ; 413 for
        # a list longer than EVENT_API_MAX_BATCH (a runtime setting, so not in the schema).
        res = tally.call(
            "events: openapi positive",
            {200, 413, 422},
            lambda: case.call(timeout=30, headers=app.auth),
            repr(case.body)[:120],
        )
        if res is not None and res.status_code == 200:
            reported += len(accepted_ids(res, case.body))
            case.validate_response(res)

    negative()
    positive()
    tally.durations["openapi fuzz"] = time.monotonic() - started
    assert tally.statuses["events: openapi positive"][200] >= 80, tally.report()
    assert sink.total() - before == reported, "ids reported to callers == events the event API received"
    assert_still_serving(app, tally)
    assert tally.count("events: openapi") >= 250
    failures = tally.distinct_failures("events: openapi")
    assert not failures, "answers outside the contract:\n" + failures


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and +-Infinity too: Python's json writes them, and so do some clients
    | st.text(max_size=30)
)
json_docs = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=15,
)
# Event-shaped documents with a wrong type or value in one place.
event_like = st.fixed_dictionaries(
    {"name": st.text(max_size=300) | json_scalars},
    optional={"data": json_docs, "id": st.text(max_size=300) | json_scalars, "ts": json_scalars, "extra": json_docs},
)


@pytest.mark.slow
def test_raw_bad_bodies(target: tuple[App, EventSink], client: httpx.Client, tally: Tally) -> None:
    """hypothesis: raw bytes, arbitrary JSON and event-shaped documents with wrong types, media types, sizes."""
    app, sink = target
    started = time.monotonic()
    reported = 0
    before = sink.total()

    @fuzz(150)
    @given(raw=st.binary(max_size=400))
    def raw_bytes(raw: bytes) -> None:
        res = tally.call("events: raw bytes", REJECTED | {200}, lambda: client.post(EVENTS, content=raw, headers=JSON))
        if res is not None and res.status_code == 200:  # the rare byte string that is a valid event
            nonlocal reported
            reported += len(accepted_ids(res, json.loads(raw)))

    @fuzz(200)
    @given(doc=json_docs | event_like | st.lists(event_like, max_size=3))
    def documents(doc: Any) -> None:
        nonlocal reported
        body = json.dumps(doc).encode()  # allow_nan: NaN/Infinity tokens, as Python clients send them
        res = tally.call(
            "events: wrong types",
            REJECTED | {200},
            lambda: client.post(EVENTS, content=body, headers=JSON),
            repr(body[:120]),
        )
        if res is not None and res.status_code == 200:
            reported += len(accepted_ids(res, doc))

    @fuzz(60)
    @given(
        media=st.sampled_from(
            ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/xml", ""]
        ),
        doc=event_like,
    )
    def media_types(media: str, doc: Any) -> None:
        body = json.dumps(doc).encode()
        tally.call(
            "events: wrong media type",
            REJECTED | {415},
            lambda: client.post(EVENTS, content=body, headers={"content-type": media} if media else {}),
        )

    raw_bytes()
    documents()
    media_types()

    # Sizes around the 1 MiB limit: declared length, and chunked (no length) bodies.
    def padded(total: int) -> bytes:
        head, tail = b'{"name":"fuzz/size","data":{"pad":"', b'"}}'
        return head + b"a" * (total - len(head) - len(tail)) + tail

    for size in (MIB + 1, 2 * MIB, 16 * MIB):
        body = padded(size)
        tally.call("events: over 1 MiB", {413}, lambda b=body: client.post(EVENTS, content=b, headers=JSON))
    res = tally.call("events: exactly 1 MiB", {200}, lambda: client.post(EVENTS, content=padded(MIB), headers=JSON))
    if res is not None and res.status_code == 200:
        reported += 1
    for size in (MIB + 1, 4 * MIB):
        chunks = _chunked(padded(size))
        tally.call("events: over 1 MiB, chunked", {413}, lambda c=chunks: client.post(EVENTS, content=c, headers=JSON))

    tally.durations["raw fuzz"] = time.monotonic() - started
    assert sink.total() - before == reported, "ids reported to callers == events the event API received"
    assert_still_serving(app, tally)
    assert tally.count("events: raw") + tally.count("events: wrong") >= 400
    failures = tally.distinct_failures("events: raw", "events: wrong", "events: over", "events: exactly")
    assert not failures, "answers outside the contract:\n" + failures


def _chunked(body: bytes, size: int = 64 * 1024) -> Any:
    """A generator body: httpx sends it with Transfer-Encoding: chunked and no Content-Length."""

    def chunks() -> Any:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return chunks()


# --- one test per defect found by the volume tests above (each names the expected answer) --------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "x", "data": NaN}',
        b'{"name": Infinity}',
        b'{"name": "x", "ts": 1e400}',
        b'[{"name": "x", "data": -Infinity}]',
    ],
)
def test_non_finite_number_in_an_invalid_body_is_422(client: httpx.Client, body: bytes) -> None:
    """FastAPI echoes the input in its 422 and cannot render NaN/Infinity: today a 500."""
    res = client.post(EVENTS, content=body, headers=JSON)
    assert res.status_code in REJECTED, f"{res.status_code} {res.text}"


@pytest.mark.parametrize("body", [b'{"name": "x", "data": {"a": NaN}}', b'{"name": "x", "data": {"a": 1e400}}'])
def test_non_finite_number_inside_data_is_rejected_not_blamed_on_inngest(client: httpx.Client, body: bytes) -> None:
    """Today: 502 "Inngest answered with an invalid response" although nothing was sent to Inngest."""
    res = client.post(EVENTS, content=body, headers=JSON)
    assert res.status_code in REJECTED, f"{res.status_code} {res.text}"


@pytest.mark.parametrize("body", [b'{"name": "\\ud800"}', b'{"name": "x", "data": {"k": "\\udfff"}}'])
def test_lone_surrogate_is_rejected(client: httpx.Client, body: bytes) -> None:
    """JSON may escape a lone surrogate; it is not encodable UTF-8. Today: 500 or 502."""
    res = client.post(EVENTS, content=body, headers=JSON)
    assert res.status_code in REJECTED, f"{res.status_code} {res.text}"


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    """Without Content-Length the limit trips while FastAPI reads the body (was 400 "error parsing")."""
    body = b'{"name":"x","data":{"pad":"' + b"a" * (2 * MIB) + b'"}}'
    res = client.post(EVENTS, content=_chunked(body), headers=JSON)
    assert res.status_code == 413, f"{res.status_code} {res.text}"


@pytest.mark.parametrize("ts", [True, False, "123", 2**63])
def test_ts_must_be_a_json_integer_in_range(client: httpx.Client, ts: Any) -> None:
    """The schema says integer (ms); booleans and numeric strings are coerced today, 2**63 is forwarded."""
    res = client.post(EVENTS, json={"name": "fuzz/ts", "ts": ts})
    assert res.status_code == 422, f"{res.status_code} {res.text}"


def test_event_api_down_is_503_then_app_still_serves(target: tuple[App, EventSink], tally: Tally) -> None:
    """Last in this module: the sink goes away; a valid send is 503 + Retry-After with a message."""
    app, sink = target
    sink.stop()
    with httpx.Client(base_url=app.url, timeout=30, headers=app.auth) as http:
        res = tally.call("events: event API down", {503}, lambda: http.post(EVENTS, json={"name": "fuzz/down"}))
    assert res is not None and res.status_code == 503, res and res.text
    assert res.headers.get("retry-after"), res.headers
    assert "unreachable" in res.json()["detail"]
    assert_still_serving(app, tally)
