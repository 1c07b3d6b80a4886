"""/api/events under wrk: the app forwards each event through the SDK to the loopback sink."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.config import EVENT_API_TOKEN, Profile, log
from benchmarks.procs import Env, Server, http_request
from benchmarks.wrk import run_wrk


def run(env: Env, prof: Profile, app: Server) -> dict[str, Any]:
    body = json.dumps({"name": "bench/event", "data": {"n": 1}}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {EVENT_API_TOKEN}"}
    status, _, raw = http_request(app.port, "POST", "/api/events", body, headers)
    if status != 200 or not json.loads(raw).get("ids"):
        raise RuntimeError(f"/api/events gave {status} {raw[:300]!r}")
    res = None
    for duration in (prof.warmup, prof.duration):  # the first run only warms up
        res = run_wrk(
            env, app.port, "/api/events", duration=duration, connections=prof.connections, body=body, headers=headers
        )
    assert res is not None
    log(f"/api/events: {res.rps:.0f} req/s p99 {res.p99_ms:.1f} ms")
    return {"connections": prof.connections, **res.as_dict(), "sink": "loopback, core 1 (shared with wrk)"}
