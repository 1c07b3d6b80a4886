"""/metrics latency with many functions, every one invoked so each has its label series (on METRICS_PORT)."""

from __future__ import annotations

import http.client
import statistics
import time
from typing import Any

from benchmarks.config import APP_ID, FN_ID, SERVE_PATH, Profile, log, signed_headers, step_request_body
from benchmarks.procs import Env, Server, http_request
from benchmarks.stats import percentile, rnd


def time_get(port: int, path: str, samples: int, conn: http.client.HTTPConnection) -> dict[str, Any]:
    for _ in range(5):
        http_request(port, "GET", path, conn=conn)
    times: list[float] = []
    size = 0
    body = b""
    for _ in range(samples):
        t0 = time.perf_counter()
        status, _, body = http_request(port, "GET", path, conn=conn)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise RuntimeError(f"GET {path} gave {status}")
        size = len(body)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return {
        "samples": samples,
        "min_ms": rnd(min(times), 3),
        "median_ms": rnd(statistics.median(times), 3),
        "p99_ms": rnd(percentile(times, 99), 3),
        "bytes": size,
        "series": series,
    }


def registered_functions(server: Server) -> int:
    _, _, raw = http_request(server.metrics_port, "GET", "/metrics")
    (line,) = [ln for ln in raw.decode().splitlines() if ln.startswith("app_inngest_registered_functions ")]
    return int(float(line.split()[1]))


def run(env: Env, prof: Profile, key: str, main_app: Server) -> dict[str, Any]:
    total = prof.metrics_functions
    own = registered_functions(main_app)
    server = env.start_app_with_functions(total)
    try:
        functions = registered_functions(server)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        scrape = http.client.HTTPConnection("127.0.0.1", server.metrics_port, timeout=30)
        registered_only = time_get(server.metrics_port, "/metrics", prof.metrics_samples, scrape)
        calls = [(FN_ID, "test/integration")]
        calls += [(f"{APP_ID}-bench-fn-{i:03d}", f"bench/fn.{i}") for i in range(max(total - own, 0))]
        fn_ids = [fn_id for fn_id, _ in calls]
        called = 0
        for fn_id, event_name in calls:  # every function gets its label series in the invocation metrics
            body = step_request_body(fn_id, event_name)
            headers = signed_headers(body, key)
            for _ in range(3):
                status, _, _ = http_request(
                    server.port, "POST", f"{SERVE_PATH}?fnId={fn_id}&stepId=step", body, headers, conn=conn
                )
                if status not in (200, 206):
                    raise RuntimeError(f"invoking {fn_id} gave {status}")
                called += 1
        with_fns = time_get(server.metrics_port, "/metrics", prof.metrics_samples, scrape)
        conn.close()
        scrape.close()
    finally:
        env.stop_tracked(server)
    conn = http.client.HTTPConnection("127.0.0.1", main_app.metrics_port, timeout=30)
    plain = time_get(main_app.metrics_port, "/metrics", prof.metrics_samples, conn)
    conn.close()
    log(
        f"/metrics: {with_fns['median_ms']:.2f} ms with {functions} fns ({len(fn_ids)} invoked, "
        f"{with_fns['series']} series), {registered_only['median_ms']:.2f} ms before any call"
    )
    return {
        "functions_registered": functions,
        "functions_invoked": len(fn_ids),
        "invocations_before": called,
        "with_functions": with_fns,
        "registered_not_invoked": registered_only,
        "app_after_benchmark": plain,
    }
