"""RSS of the fresh process, after the first calls, and after `prof.invocations` calls in all."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.config import STEP_PATH, Profile, log
from benchmarks.procs import Env, Server
from benchmarks.stats import rnd
from benchmarks.wrk import run_wrk


def run(env: Env, prof: Profile, servers: dict[str, Server], body: bytes, hdrs: dict[str, str]) -> dict[str, Any]:
    first = min(1_000, prof.invocations // 2)
    out: dict[str, Any] = {"invocations": prof.invocations, "first_calls": first}
    for name, server in servers.items():
        time.sleep(0.5)
        idle = server.rss_kb()
        requests = 0
        rss_first = idle
        for count in (first, prof.invocations - first):
            res = run_wrk(
                env,
                server.port,
                STEP_PATH,
                duration=600,
                connections=prof.connections,
                body=body,
                headers=hdrs,
                stop_after=count,
            )
            requests += res.requests
            if res.errors["status"]:
                raise RuntimeError(f"{name}: {res.errors['status']} non-2xx answers during the RSS run")
            if count == first:
                time.sleep(0.2)
                rss_first = server.rss_kb()
        time.sleep(0.5)
        after = server.rss_kb()
        out[name] = {
            "idle_rss_mb": rnd(idle / 1024),
            "rss_after_first_calls_mb": rnd(rss_first / 1024),
            "rss_after_mb": rnd(after / 1024),
            "growth_mb": rnd((after - idle) / 1024),
            "growth_after_first_calls_mb": rnd((after - rss_first) / 1024),
            "requests": requests,
        }
        log(
            f"memory {name}: idle {idle / 1024:.1f} MB -> {rss_first / 1024:.1f} MB after {first} calls -> "
            f"{after / 1024:.1f} MB after {requests} calls"
        )
    return out


def add_steady_state(memory: dict[str, Any], app: Server, prof: Profile, throughput: dict[str, Any]) -> None:
    """The app's RSS after the throughput rounds too: first-use initialisation vs growth."""
    app_mem = memory["app"]
    total_calls = prof.invocations + sum(r["app"]["requests"] for r in throughput["rounds"])
    app_mem["rss_after_all_mb"] = rnd(app.rss_kb() / 1024)
    app_mem["calls_before_after_all"] = total_calls
    steady_calls = total_calls - prof.invocations
    app_mem["steady_growth_mb_per_20k"] = rnd(
        (app_mem["rss_after_all_mb"] - app_mem["rss_after_mb"]) * 20_000 / max(steady_calls, 1)
    )
