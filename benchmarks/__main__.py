"""`python -m benchmarks` (what `make bench` runs): every phase in one run, a table and a JSON file.

Both servers run on loopback pinned to core 0; wrk (and the loopback Inngest API stand-in) run on core 1.
Throughput rounds alternate between the two servers with the same signed step invocation, so slow drift
of the machine hits both alike. Everything else (cold start, memory, /metrics, sync, event ingest) is
measured on the app. Writes `benchmarks/results/latest.json`, or `latest-quick.json` with `--quick`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report, targets
from benchmarks.config import (
    BENCH,
    LOAD_CPU,
    SCHEMA_VERSION,
    STEP_PATH,
    Profile,
    log,
    signed_headers,
    step_request_body,
)
from benchmarks.phases import cold_start, end_to_end, events, memory, metrics, sync, throughput
from benchmarks.procs import Env, load_average, pinning_available
from benchmarks.stats import rnd
from tests.support import ROOT
from tests.support.inngest import inngest_binary

PHASES = ("memory", "throughput", "events", "metrics", "sync", "cold_start", "end_to_end")


def parse_args(argv: list[str] | None) -> tuple[Profile, Path, bool, tuple[str, ...]]:
    parser = argparse.ArgumentParser(description="Benchmark the app against the bare inngest-py FastAPI example")
    parser.add_argument("--quick", action="store_true", help="short version (under a minute)")
    parser.add_argument("--out", type=Path, help="JSON output path")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=int, help="seconds per wrk round")
    parser.add_argument("--connections", type=int)
    parser.add_argument("--e2e-events", type=int, help="events in each end-to-end burst")
    parser.add_argument("--e2e-rounds", type=int, help="end-to-end rounds (a burst and a steady run per side)")
    parser.add_argument("--e2e-tick", type=int, help="the end-to-end servers' queue poll interval, INNGEST_TICK (ms)")
    parser.add_argument("--e2e-queue-workers", type=int, help="the end-to-end servers' INNGEST_QUEUE_WORKERS")
    parser.add_argument(
        "--e2e-data", choices=("tmpfs", "disk"), help="the servers' SQLite directory (default tmpfs: /dev/shm)"
    )
    parser.add_argument(
        "--e2e-layout",
        choices=end_to_end.LAYOUTS,
        help="cores of the end-to-end phase: each side's server and SDK on one (default), or split over two",
    )
    parser.add_argument(
        "--phases", help=f"comma-separated subset of {','.join(PHASES)} (default: all; partial runs are not references)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep server logs (path printed)")
    args = parser.parse_args(argv)
    prof = Profile.make(args.quick)
    prof.rounds = args.rounds or prof.rounds
    prof.duration = args.duration or prof.duration
    prof.connections = args.connections or prof.connections
    prof.e2e_events = args.e2e_events or prof.e2e_events
    prof.e2e_rounds = args.e2e_rounds or prof.e2e_rounds
    prof.e2e_tick_ms = args.e2e_tick or prof.e2e_tick_ms
    prof.e2e_queue_workers = args.e2e_queue_workers or prof.e2e_queue_workers
    prof.e2e_data = args.e2e_data or prof.e2e_data
    prof.e2e_layout = args.e2e_layout or prof.e2e_layout
    phases = tuple(args.phases.split(",")) if args.phases else PHASES
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    out = args.out or BENCH / "results" / ("latest-quick.json" if prof.quick else "latest.json")
    return prof, out, args.keep_logs, phases


def config(prof: Profile) -> dict[str, Any]:
    return {
        "rounds": prof.rounds,
        "duration_s": prof.duration,
        "warmup_s": prof.warmup,
        "connections": prof.connections,
        "wrk_threads": 1,
        "invocations_for_rss": prof.invocations,
        "baseline": "benchmarks/baseline_app.py, uvicorn --loop asyncio --http h11 (default install)",
        "app": "python -m app, INNGEST_MODE=self-hosted, signature checks, metrics and JSON logs on",
        "request": f"POST {STEP_PATH} (signed, X-Inngest-Signature computed once)",
        "end_to_end": {
            "events": prof.e2e_events,
            "rounds": prof.e2e_rounds,
            "steady_seconds": prof.e2e_steady_seconds,
            "server": f"inngest start, SQLite on {prof.e2e_data}, INNGEST_TICK={prof.e2e_tick_ms} "
            f"INNGEST_QUEUE_WORKERS={prof.e2e_queue_workers}",
            "layout": prof.e2e_layout,
        },
    }


def measure(env: Env, prof: Profile, result: dict[str, Any], phases: tuple[str, ...]) -> None:
    env.start_sink()
    body = step_request_body()
    hdrs = signed_headers(body, env.signing_key)
    servers = {"baseline": env.start_baseline(), "app": env.start_app()}
    result["checks"] = {name: throughput.check_invocation(s, body, hdrs) for name, s in servers.items()}
    log(f"servers up (pinned: {env.pin}); signed call ok, unsigned call refused on both")

    if "memory" in phases:
        result["memory"] = memory.run(env, prof, servers, body, hdrs)
        env.check_alive()
    if "throughput" in phases:
        result["throughput"] = throughput.run(env, prof, servers, body, hdrs)
        if "memory" in result:
            memory.add_steady_state(result["memory"], servers["app"], prof, result["throughput"])
        log("the same call on a new connection each time, as the Inngest server makes it")
        close = throughput.new_connection_per_call(hdrs)
        result["throughput_new_connections"] = throughput.run(
            env, prof, servers, body, close, rounds_wanted=max(2, prof.rounds - 2)
        )
        env.check_alive()
    if "events" in phases:
        result["events"] = events.run(env, prof, servers["app"])
        env.check_alive()
    if "metrics" in phases:
        result["metrics"] = metrics.run(env, prof, env.signing_key, servers["app"])
        env.check_alive()
    if "sync" in phases:
        result["sync"] = sync.run(env, prof, env.signing_key)
        env.check_alive()
    if "cold_start" in phases:
        result["cold_start"] = cold_start.run(env, prof)
    if "end_to_end" in phases:
        for name in ("baseline", "app"):  # the wrk rounds' servers are done: keep their core for this phase
            env.stop_tracked(servers[name])
        result["end_to_end"] = end_to_end.run(env, prof)


def main(argv: list[str] | None = None) -> int:
    prof, out, keep_logs, phases = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk not found; install it (apt-get install wrk)", file=sys.stderr)
        return 2
    if "end_to_end" in phases:
        try:
            inngest_binary()
        except (pytest.skip.Exception, pytest.fail.Exception) as exc:  # how tests.support says "missing"
            print(f"bench: {exc} (or leave end_to_end out of --phases)", file=sys.stderr)
            return 2
    pin = pinning_available()
    if pin:
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    else:
        log("fewer than 2 usable CPUs or no taskset: running unpinned")

    started = time.perf_counter()
    load_start = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    env = Env(workdir=workdir, pin=pin, signing_key=secrets.token_hex(32))
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": prof.quick,
        "machine": report.machine_info(pin),
        "config": config(prof),
        "phases": list(phases),
    }
    try:
        measure(env, prof, result, phases)
    finally:
        env.stop_all()
        if keep_logs:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    result["load_average"] = {"start": load_start, "end": load_average()}
    result["targets"] = targets.evaluate(result)
    result["elapsed_s"] = rnd(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(report.text_table(result))
    print()
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"load average {load_start} -> {result['load_average']['end']} (other work on the machine skews req/s)")
    print(f"wrote {shown} in {result['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
