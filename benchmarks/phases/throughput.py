"""Alternating wrk rounds against both servers with the same signed step invocation."""

from __future__ import annotations

import json
import statistics
from typing import Any

from benchmarks.config import STEP_PATH, Profile, log
from benchmarks.procs import Env, Server, cpu_seconds, http_request
from benchmarks.stats import rnd
from benchmarks.wrk import WrkResult, run_wrk


def check_invocation(server: Server, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The signed call must succeed and an unsigned one must be refused: both servers check signatures."""
    status, res_headers, res_body = http_request(server.port, "POST", STEP_PATH, body, headers)
    if status != 200 or json.loads(res_body) != "Hello":
        raise RuntimeError(f"{server.name}: signed step call gave {status} {res_body[:300]!r}")
    unsigned = {k: v for k, v in headers.items() if k != "X-Inngest-Signature"}
    status_unsigned, _, _ = http_request(server.port, "POST", STEP_PATH, body, unsigned)
    if status_unsigned != 401:
        raise RuntimeError(f"{server.name}: unsigned step call gave {status_unsigned}, expected 401")
    return {
        "status": status,
        "body": res_body.decode(),
        "unsigned_status": status_unsigned,
        "response_signed": "x-inngest-signature" in res_headers,
    }


def new_connection_per_call(hdrs: dict[str, str]) -> dict[str, str]:
    """The server's way: it opens a connection for every call to the SDK and closes it after the answer
    (its HTTP transport disables keep-alive), so accept and teardown are part of every step's cost. wrk
    reconnects after each answer to a request saying `Connection: close`."""
    return {**hdrs, "Connection": "close"}


def load(env: Env, prof: Profile, server: Server, body: bytes, hdrs: dict[str, str], duration: int) -> WrkResult:
    return run_wrk(
        env, server.port, STEP_PATH, duration=duration, connections=prof.connections, body=body, headers=hdrs
    )


def run(
    env: Env,
    prof: Profile,
    servers: dict[str, Server],
    body: bytes,
    hdrs: dict[str, str],
    rounds_wanted: int | None = None,
) -> dict[str, Any]:
    names = list(servers)
    for name in names:  # warm both (JIT-less, but caches, lazy imports, connection setup)
        load(env, prof, servers[name], body, hdrs, prof.warmup)
    rounds: list[dict[str, Any]] = []
    for r in range(rounds_wanted or prof.rounds):
        order = names if r % 2 == 0 else names[::-1]
        entry: dict[str, Any] = {"order": order}
        for name in order:
            cpu_before = cpu_seconds(servers[name].pid)
            res = load(env, prof, servers[name], body, hdrs, prof.duration)
            cpu_used = cpu_seconds(servers[name].pid) - cpu_before
            if res.errors["status"] or res.errors["timeout"]:
                log(f"warning: {name} round {r}: errors {res.errors}")
            entry[name] = res.as_dict()
            entry[name]["cpu_us_per_request"] = rnd(cpu_used / max(res.requests, 1) * 1e6, 1)
            entry[name]["cpu_utilisation"] = rnd(cpu_used / res.seconds, 3) if res.seconds else None
        entry["ratio"] = rnd(entry["app"]["rps"] / entry["baseline"]["rps"], 3)
        entry["p99_ratio"] = rnd(entry["app"]["p99_ms"] / entry["baseline"]["p99_ms"], 3)
        entry["cpu_ratio"] = rnd(
            entry["baseline"]["cpu_us_per_request"] / max(entry["app"]["cpu_us_per_request"], 1e-9), 3
        )
        log(
            f"round {r + 1}/{prof.rounds}: baseline {entry['baseline']['rps']:.0f} req/s "
            f"p99 {entry['baseline']['p99_ms']:.1f} ms | app {entry['app']['rps']:.0f} req/s "
            f"p99 {entry['app']['p99_ms']:.1f} ms | ratio {entry['ratio']:.2f}, p99 ratio {entry['p99_ratio']:.2f}"
        )
        rounds.append(entry)

    def med(name: str, key: str) -> float:
        return statistics.median(float(r[name][key]) for r in rounds)

    keys = ("rps", "p50_ms", "p90_ms", "p99_ms", "cpu_us_per_request")
    summary = {name: {key: rnd(med(name, key), 3) for key in keys} for name in names}
    return {
        "connections": prof.connections,
        "duration_s": prof.duration,
        "rounds": rounds,
        **summary,
        "ratio_median": rnd(statistics.median(r["ratio"] for r in rounds), 3),
        "ratio_min": rnd(min(r["ratio"] for r in rounds), 3),
        "ratio_max": rnd(max(r["ratio"] for r in rounds), 3),
        # The tail compared within each round (same machine state), then the median over rounds.
        "p99_ratio_median": rnd(statistics.median(r["p99_ratio"] for r in rounds), 3),
        "p99_ratio_min": rnd(min(r["p99_ratio"] for r in rounds), 3),
        "p99_ratio_max": rnd(max(r["p99_ratio"] for r in rounds), 3),
        # baseline CPU per request / app CPU per request: less sensitive to other load on the machine
        "cpu_ratio_median": rnd(statistics.median(r["cpu_ratio"] for r in rounds), 3),
    }
