"""End to end through the real Inngest server: completed runs per second and event-to-Completed latency.

The app and the baseline each get their own `inngest start` (SQLite in a directory of its own, loopback, the
same flags), each synced by a signed PUT, both serving the same three-step workflow
(`bench_functions.three_steps`). Every round starts both sides afresh (new servers, empty SQLite) and the
rounds alternate which side goes first.

Cores (`--e2e-layout`): by default (`one-core`) each side's Inngest server and SDK process share core 0, as
the stack shares one host's cores under `make up`, and this driver has core 1, as wrk has in the throughput
rounds: a run's whole cost, the server's scheduling and the SDK's steps, comes out of one core, so CPU the
SDK saves per run is CPU the server gets. `split` gives the servers the driver's core and the SDKs core 0
of their own: the server alone sets the pace, and the SDK shows only in its own CPU and latency.

- burst: N events sent at once; runs/s = N / (first event sent -> last run's `ended_at`), both instants from
  this host's clock, the end from the server's REST API (`/v1/events/{id}/runs`).
- steady: one event at a time at a low rate (20/s, or less if the server completes fewer runs than that
  a second: then it would measure the backlog, not the latency); latency = send -> the run's `ended_at`.
- where the time goes: from the server's trace of steady runs, the time spent in its calls to the SDK (one
  span per step and one for the function's return) against the rest (queueing and scheduling), and the CPU
  time of each process per run over the burst.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_functions import E2E_EVENT, E2E_FN_ID
from benchmarks.config import (
    APP_ID,
    EVENT_KEY,
    LOAD_CPU,
    SERVE_PATH,
    SERVER_CPU,
    STACK_QUEUE_WORKERS,
    STACK_TICK_MS,
    Profile,
    log,
)
from benchmarks.procs import Env, Server, cpu_seconds, http_request, pinned
from benchmarks.stats import percentile, rnd
from tests.support import wait_until
from tests.support.inngest import InngestServer, inngest_binary

SLUG = f"{APP_ID}-{E2E_FN_ID}"
TMPFS = Path("/dev/shm")
SEND_CHUNK = 500  # events per POST of the burst
MAX_STEADY_RATE = 20.0
LAYOUTS = ("one-core", "split")  # --e2e-layout; the first is the default (Profile.e2e_layout)


def server_cpu(prof: Profile) -> str:
    """The Inngest servers' core: the SDKs' (one-core) or the driver's (split)."""
    return SERVER_CPU if prof.e2e_layout == "one-core" else LOAD_CPU


class PinnedInngestServer(InngestServer):
    """`inngest start` pinned to one core (`server_cpu`)."""

    cpu: str | None = None

    def command(self) -> list[str]:
        return pinned(super().command(), self.cpu, True) if self.cpu else super().command()


@dataclass
class Side:
    name: str
    server: InngestServer
    sdk: Server
    function_id: str

    def cpu(self) -> tuple[float, float]:
        assert self.server.proc is not None
        return cpu_seconds(self.server.proc.pid), cpu_seconds(self.sdk.pid)


def server_env(prof: Profile) -> dict[str, str]:
    """The poll interval and worker count, set the way the stack sets them (environment variables)."""
    return {"INNGEST_TICK": str(prof.e2e_tick_ms), "INNGEST_QUEUE_WORKERS": str(prof.e2e_queue_workers)}


def server_args(prof: Profile) -> list[str]:
    return [f"{k}={v}" for k, v in server_env(prof).items()]


def data_dir(env: Env, prof: Profile, name: str) -> Path:
    """The server's SQLite directory: in memory (/dev/shm) unless asked for disk. On this machine's disk the
    server's SQLite writes bound it at ~5 runs/s (100 ms of its CPU per run); in memory at ~20 runs/s, where
    the SDK side's share of the time is visible at all."""
    if prof.e2e_data == "tmpfs" and TMPFS.is_dir():
        return Path(tempfile.mkdtemp(prefix=f"bench-inngest-{name}-", dir=TMPFS))
    path = env.workdir / f"inngest-{name}"
    path.mkdir()
    return path


def start_side(env: Env, prof: Profile, name: str) -> Side:
    server = PinnedInngestServer(
        signing_key=env.signing_key,
        event_key=EVENT_KEY,
        poll_interval=0,
        env=server_env(prof),
        data_dir=data_dir(env, prof, name),
    )
    server.cpu = server_cpu(prof) if env.pin else None
    server.start()
    try:
        sdk = env.start_app_with_workflow(server.url) if name == "app" else env.start_baseline(api_base=server.url)
        from app.sdk import signed_headers

        status, _, body = http_request(sdk.port, "PUT", SERVE_PATH, b"", signed_headers(env.signing_key), timeout=60)
        if status != 200 or b'"ok": true' not in body.replace(b'"ok":true', b'"ok": true'):
            raise RuntimeError(f"{name}: sync gave {status} {body[:300]!r}")
        fn = wait_until(lambda: server.functions().get(SLUG), 30, what=f"{SLUG} on {name}'s server")
    except BaseException:
        print(server.log_tail())
        close(server)
        raise
    return Side(name, server, sdk, str(fn["id"]))


def close(server: InngestServer) -> None:
    server.close()
    if server.data_dir is not None:
        shutil.rmtree(server.data_dir, ignore_errors=True)


def settle(sides: dict[str, Side], timeout: float = 20.0) -> None:
    """Wait until no server is still busy with the previous measurement (history, traces, finish events are
    written after the runs end): both servers share one core, and the next side must not pay for the last."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = [side.cpu()[0] for side in sides.values()]
        time.sleep(0.5)
        if all(side.cpu()[0] - cpu < 0.05 for side, cpu in zip(sides.values(), before, strict=True)):
            return  # under 10% of a core each over half a second: idle (the tick alone is ~2%)


def _ts(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def wait_finished(side: Side, total: int, timeout: float) -> None:
    wait_until(
        lambda: side.server.run_count(side.function_id) >= total,
        timeout,
        interval=0.25,
        what=f"{total} finished runs of {SLUG} ({side.name})",
    )


def fetch_runs(side: Side, event_ids: list[str]) -> list[dict[str, Any]]:
    """Each event's one run, from the REST API (after the clock stopped: not part of the timing)."""
    with side.server.api() as api:
        runs = [side.server.runs_for_event(event_id, api) for event_id in event_ids]
    missing = sum(1 for r in runs if len(r) != 1)
    if missing:
        raise RuntimeError(f"{side.name}: {missing} events without exactly one run")
    return [r[0] for r in runs]


def burst(side: Side, events: int, timeout: float) -> dict[str, Any]:
    before = side.server.run_count(side.function_id)
    cpu_server, cpu_sdk = side.cpu()
    batch = [{"name": E2E_EVENT, "data": {"n": n}} for n in range(events)]
    started = time.time()
    ids: list[str] = []
    for i in range(0, events, SEND_CHUNK):
        ids += side.server.send_many(batch[i : i + SEND_CHUNK])
    sent = time.time()
    wait_finished(side, before + events, timeout)
    cpu_server_after, cpu_sdk_after = side.cpu()
    runs = fetch_runs(side, ids)
    failed = sum(1 for r in runs if r["status"] != "Completed")
    last = max(_ts(r["ended_at"]) for r in runs)
    elapsed = last - started
    return {
        "events": events,
        "runs_per_second": rnd(events / elapsed, 2),
        "seconds": rnd(elapsed, 3),
        "send_seconds": rnd(sent - started, 3),
        "not_completed": failed,
        # CPU time per run over the burst: which process the work is in.
        "server_cpu_ms_per_run": rnd((cpu_server_after - cpu_server) / events * 1000, 2),
        "sdk_cpu_ms_per_run": rnd((cpu_sdk_after - cpu_sdk) / events * 1000, 2),
        "sdk_core_utilisation": rnd((cpu_sdk_after - cpu_sdk) / elapsed, 3),
        "server_core_utilisation": rnd((cpu_server_after - cpu_server) / elapsed, 3),
    }


def steady(side: Side, rate: float, duration: float, timeout: float) -> dict[str, Any]:
    count = max(int(rate * duration), 2)
    before = side.server.run_count(side.function_id)
    sends: list[tuple[str, float]] = []
    origin = time.perf_counter()
    with httpx.Client(base_url=side.server.url, timeout=10) as http:
        for n in range(count):
            delay = origin + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            at = time.time()
            answer = http.post(f"/e/{side.server.event_key}", json={"name": E2E_EVENT, "data": {"n": n}})
            answer.raise_for_status()
            sends.append((str(answer.json()["ids"][0]), at))
    wait_finished(side, before + count, timeout)
    runs = fetch_runs(side, [event_id for event_id, _ in sends])
    latencies = [(_ts(run["ended_at"]) - at) * 1000 for run, (_, at) in zip(runs, sends, strict=True)]
    return {
        "events": count,
        "rate_per_second": rnd(rate, 2),
        "not_completed": sum(1 for r in runs if r["status"] != "Completed"),
        "p50_ms": rnd(percentile(latencies, 50), 1),
        "p99_ms": rnd(percentile(latencies, 99), 1),
        "max_ms": rnd(max(latencies), 1),
        "breakdown": breakdown(side, runs, sends),
    }


def breakdown(side: Side, runs: list[dict[str, Any]], sends: list[tuple[str, float]]) -> dict[str, Any]:
    """Per run (medians over up to 20 steady runs): send -> run started, the server's calls to the SDK (its
    spans: the HTTP round trip and the SDK's handling), and everything else until `ended_at` (scheduling)."""
    rows: list[dict[str, float]] = []
    for run, (_, at) in list(zip(runs, sends, strict=True))[:20]:
        spans = sorted((_ts(a), _ts(b)) for a, b in side.server.step_times(run["run_id"]).values())
        if not spans:
            continue
        total = _ts(run["ended_at"]) - at
        in_calls = sum(b - a for a, b in spans)
        rows.append(
            {
                "total_ms": total * 1000,
                "to_first_call_ms": (spans[0][0] - at) * 1000,
                "in_sdk_calls_ms": in_calls * 1000,
                "between_calls_ms": sum(b[0] - a[1] for a, b in itertools.pairwise(spans)) * 1000,
                "after_last_call_ms": (_ts(run["ended_at"]) - spans[-1][1]) * 1000,
                "calls": len(spans),
            }
        )
    if not rows:
        return {}
    out: dict[str, Any] = {k: rnd(statistics.median(r[k] for r in rows), 1) for k in rows[0]}
    out["runs_sampled"] = len(rows)
    out["scheduling_share"] = rnd(1 - out["in_sdk_calls_ms"] / out["total_ms"], 3) if out["total_ms"] else None
    return out


def _summary(rounds: list[dict[str, Any]], name: str) -> dict[str, Any]:
    def med(kind: str, key: str) -> float | None:
        values = [r[name][kind][key] for r in rounds if r[name][kind].get(key) is not None]
        return rnd(statistics.median(values), 2) if values else None

    return {
        "runs_per_second": med("burst", "runs_per_second"),
        "latency_ms": {"p50": med("steady", "p50_ms"), "p99": med("steady", "p99_ms")},
        "server_cpu_ms_per_run": med("burst", "server_cpu_ms_per_run"),
        "sdk_cpu_ms_per_run": med("burst", "sdk_cpu_ms_per_run"),
        "sdk_core_utilisation": med("burst", "sdk_core_utilisation"),
        "server_core_utilisation": med("burst", "server_core_utilisation"),
        "breakdown": rounds[-1][name]["steady"]["breakdown"],
    }


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"median": rnd(statistics.median(values), 3), "min": rnd(min(values), 3), "max": rnd(max(values), 3)}


def start_sides(env: Env, prof: Profile, names: list[str]) -> dict[str, Side]:
    sides: dict[str, Side] = {}
    try:
        for name in names:
            sides[name] = start_side(env, prof, name)
    except BaseException:
        stop_sides(env, sides)
        raise
    return sides


def stop_sides(env: Env, sides: dict[str, Side]) -> None:
    for side in sides.values():
        if side.sdk in env.servers:
            env.stop_tracked(side.sdk)
        close(side.server)


@contextlib.contextmanager
def only(sides: dict[str, Side], name: str) -> Iterator[Side]:
    """The other sides' server and SDK processes stopped (SIGSTOP) while `name` is measured: a server keeps
    working after its burst (history, traces, its own periodic jobs) in bursts that `settle` can miss, on the
    core the measured side needs; with both running, the side that burst second was the slower one in 5 of 6
    rounds (one-core layout, two runs)."""
    others = [pid for other, side in sides.items() if other != name for pid in _pids(side)]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield sides[name]
    finally:
        for pid in others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _pids(side: Side) -> list[int]:
    assert side.server.proc is not None
    return [side.server.proc.pid, side.sdk.pid]


def one_round(env: Env, prof: Profile, order: list[str], timeout: float) -> dict[str, Any]:
    """Fresh servers for every round: a server's own work per run grows with the runs its SQLite already
    holds (56 -> 170 ms of CPU per run over three rounds of 2,000 on one server), which would make the
    rounds incomparable and the phase three times longer."""
    sides = start_sides(env, prof, sorted(order))
    entry: dict[str, Any] = {"order": order, **{name: {} for name in order}}
    try:
        for name in order:
            # Each side warms up right before its own burst (warmed at the round's start, the second side
            # sat idle through the first one's burst and went slower), with the other side stopped.
            with only(sides, name) as side:
                for _ in range(prof.e2e_warmup):  # first runs: the server's and the SDK's first-use costs
                    burst(side, 20, timeout)
                settle({name: side})
                entry[name]["burst"] = burst(side, prof.e2e_events, timeout)
        # Low enough that runs do not queue up behind each other on this server.
        slower = min(entry[name]["burst"]["runs_per_second"] for name in order)
        rate = min(MAX_STEADY_RATE, max(1.0, round(slower * 0.4, 1)))
        for name in order:
            with only(sides, name) as side:
                settle({name: side})
                entry[name]["steady"] = steady(side, rate, prof.e2e_steady_seconds, timeout)
    finally:
        stop_sides(env, sides)
    app, base = entry["app"], entry["baseline"]
    entry["ratio"] = rnd(app["burst"]["runs_per_second"] / base["burst"]["runs_per_second"], 3)
    entry["p99_ratio"] = rnd(app["steady"]["p99_ms"] / base["steady"]["p99_ms"], 3)
    return entry


def run(env: Env, prof: Profile) -> dict[str, Any]:
    names = ["baseline", "app"]
    log(f"end to end: each side synced to its own inngest start ({' '.join(server_args(prof))}), fresh per round")
    timeout = max(120.0, prof.e2e_events / 2)
    rounds: list[dict[str, Any]] = []
    for r in range(prof.e2e_rounds):
        entry = one_round(env, prof, names if r % 2 == 0 else names[::-1], timeout)
        base, app = entry["baseline"], entry["app"]
        log(
            f"e2e round {r + 1}/{prof.e2e_rounds}: runs/s baseline {base['burst']['runs_per_second']}"
            f" app {app['burst']['runs_per_second']} (x{entry['ratio']}) | at {app['steady']['rate_per_second']}/s"
            f" p99 baseline {base['steady']['p99_ms']} ms app {app['steady']['p99_ms']} ms"
        )
        rounds.append(entry)
    result: dict[str, Any] = {name: _summary(rounds, name) for name in names}
    result["ratio"] = rnd(statistics.median(r["ratio"] for r in rounds), 3)
    result["ratio_spread"] = _spread([r["ratio"] for r in rounds])
    result["p99_ratio"] = _spread([r["p99_ratio"] for r in rounds])
    result["events"] = prof.e2e_events
    result["rounds"] = rounds
    result["steady_seconds"] = prof.e2e_steady_seconds
    result["server"] = {
        "binary": inngest_binary(),
        "command": " ".join(server_args(prof)) + " inngest start --sqlite-dir <dir> --poll-interval 0",
        "sqlite_dir": "tmpfs (/dev/shm)" if prof.e2e_data == "tmpfs" and TMPFS.is_dir() else "disk",
        "tick_ms": prof.e2e_tick_ms,
        "queue_workers": prof.e2e_queue_workers,
        "stack": {"tick_ms": STACK_TICK_MS, "queue_workers": STACK_QUEUE_WORKERS},
        "layout": prof.e2e_layout,
        "cpus": {"inngest_servers": server_cpu(prof), "sdks": SERVER_CPU, "driver": LOAD_CPU} if env.pin else None,
    }
    result["bound_by"] = bound_by(result)
    return result


def bound_by(result: dict[str, Any]) -> dict[str, Any]:
    """Which process the burst's time went to: the one whose core was busy is the limit."""
    app = result["app"]
    server_util, sdk_util = app["server_core_utilisation"], app["sdk_core_utilisation"]
    which = "server" if (server_util or 0) > (sdk_util or 0) else "app"
    return {
        "which": which,
        "evidence": (
            f"during the app's bursts the Inngest server used {server_util} of a core and "
            f"{app['server_cpu_ms_per_run']} ms CPU per run; the app {sdk_util} of its core and "
            f"{app['sdk_cpu_ms_per_run']} ms per run"
        ),
    }
