"""Sync for N functions: the SDK's payload build in a process of its own, and the signed PUT end to end."""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from app.sdk import sign
from benchmarks.config import BENCH, SERVE_PATH, SERVER_CPU, Profile, log
from benchmarks.procs import Env, http_request, pinned
from benchmarks.stats import linear_fit, marginal, rnd
from tests.support import ROOT, free_port


def measure_build(env: Env, total: int, repeats: int) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH / "app_with_fns.py"), "--functions", str(total)]
    cmd += ["--measure-sync-build", str(repeats)]
    proc = subprocess.run(
        pinned(cmd, SERVER_CPU, env.pin),
        env=env.app_env(free_port()),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sync build measurement failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure_put(env: Env, prof: Profile, key: str, total: int) -> tuple[list[float], Any, Any]:
    """Signed PUTs to a running app with `total` functions: times (ms, the first left out), functions, bytes."""
    server = env.start_app_with_functions(total)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        times: list[float] = []
        registered = payload_bytes = None
        for i in range(prof.sync_repeats + 1):
            headers = {"X-Inngest-Signature": sign(b"", key), "X-Inngest-Server-Kind": "cloud"}
            t0 = time.perf_counter()
            status, _, raw = http_request(server.port, "PUT", SERVE_PATH, b"", headers, conn=conn)
            elapsed = (time.perf_counter() - t0) * 1000
            payload = json.loads(raw)
            if status != 200 or payload.get("ok") is not True:
                raise RuntimeError(f"sync with {total} functions gave {status} {raw[:300]!r}")
            registered = payload.get("functions")
            payload_bytes = payload.get("bytes")
            if i:  # the first PUT also opens the SDK's connection to the sink
                times.append(elapsed)
        conn.close()
    finally:
        env.stop_tracked(server)
    return times, registered, payload_bytes


def run(env: Env, prof: Profile, key: str) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for total in prof.sync_sizes:
        build = measure_build(env, total, repeats=max(prof.sync_repeats, 5))
        times, registered, payload_bytes = measure_put(env, prof, key, total)
        best = min(times)
        sizes[str(total)] = {
            "functions_sent": registered,
            "payload_bytes": payload_bytes,
            "build_min_ms": rnd(build["min_ms"], 3),
            "build_per_function_us": rnd(build["min_ms"] * 1000 / total, 1),
            "min_ms": rnd(best, 3),
            "median_ms": rnd(statistics.median(times), 3),
            "per_function_ms": rnd(best / total, 4),
        }
        log(
            f"sync {total} functions: PUT {best:.1f} ms min ({registered} sent, {payload_bytes} bytes), "
            f"payload build {build['min_ms']:.2f} ms"
        )
    xs = [float(n) for n in prof.sync_sizes]
    build_slopes, build_growth = marginal([sizes[str(n)]["build_min_ms"] for n in prof.sync_sizes], xs)
    put_slopes, put_growth = marginal([sizes[str(n)]["min_ms"] for n in prof.sync_sizes], xs)
    return {
        "sizes": sizes,
        "build_marginal": build_slopes,
        "marginal_growth": build_growth,
        "put_marginal": put_slopes,
        "put_marginal_growth": put_growth,
        "put_fit": linear_fit(xs, [sizes[str(n)]["min_ms"] for n in prof.sync_sizes]),
        "note": "build = the SDK's sync payload for the app's functions (configs + body + JSON), in a process "
        "of its own, min of repeats; PUT = signed PUT to the running app -> /fn/register on the loopback "
        "sink. Linear when the marginal cost per function stays flat (marginal_growth ~ 1; a quadratic "
        "cost would give ~5.5 for 10/100/500). The PUT's first segment is within its noise.",
    }
