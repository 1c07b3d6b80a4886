"""wrk as the load generator: one run, its summary from the Lua script's `done()` hook."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.config import LOAD_CPU, LUA
from benchmarks.procs import Env, pinned
from benchmarks.stats import rnd


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": rnd(self.seconds, 3),
            "rps": rnd(self.rps, 1),
            "p50_ms": rnd(self.p50_ms, 3),
            "p90_ms": rnd(self.p90_ms, 3),
            "p99_ms": rnd(self.p99_ms, 3),
            "max_ms": rnd(self.max_ms, 3),
            "errors": self.errors,
        }


def run_wrk(
    env: Env,
    port: int,
    path: str,
    *,
    duration: int,
    connections: int,
    method: str = "POST",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> WrkResult:
    body_file = env.workdir / f"body-{secrets.token_hex(4)}.bin"
    body_file.write_bytes(body or b"")
    wrk_env = dict(os.environ)
    wrk_env.update(
        {
            "BENCH_METHOD": method,
            "BENCH_BODY_FILE": str(body_file) if body else "",
            "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in (headers or {}).items()),
        }
    )
    if stop_after:
        wrk_env["BENCH_STOP_AFTER"] = str(stop_after)
    cmd = pinned(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            f"http://127.0.0.1:{port}{path}",
        ],
        LOAD_CPU,
        env.pin,
    )
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=wrk_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    summary: dict[str, Any] | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("BENCH_STOPPED"):
            # wrk's main thread sleeps for the whole -d; interrupt it once the count is reached.
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)  # taskset execs wrk: same pid
        elif line.startswith("BENCH_JSON "):
            summary = json.loads(line[len("BENCH_JSON ") :])
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.wait()
    elapsed = time.perf_counter() - started
    if summary is None:
        raise RuntimeError(f"wrk gave no summary (exit {proc.returncode}): {stderr.strip()}")
    seconds = summary["duration_us"] / 1e6
    if stop_after:
        seconds = min(seconds, elapsed)
    pct = summary["latency_us"]["percentiles"]
    return WrkResult(
        requests=summary["requests"],
        seconds=seconds,
        rps=summary["requests"] / seconds if seconds else 0.0,
        p50_ms=pct["50"] / 1000,
        p90_ms=pct["90"] / 1000,
        p99_ms=pct["99"] / 1000,
        max_ms=summary["latency_us"]["max"] / 1000,
        errors=summary["errors"],
    )
