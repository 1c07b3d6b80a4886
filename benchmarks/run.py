"""`make bench`: the app against the bare inngest-py FastAPI example, side by side, in one run.

Both servers run on loopback pinned to core 0; wrk (and the loopback Inngest API stand-in) run on core 1.
Throughput rounds alternate between the two servers with the same signed step invocation, so slow drift
of the machine hits both alike. Everything else (cold start, memory, /metrics, sync, event ingest) is
measured on the app. Prints a table and writes JSON (default `benchmarks/results/latest.json`, or
`latest-quick.json` with `--quick`).

Usage: python benchmarks/run.py [--quick] [--out PATH] [--rounds N] [--duration S] [--connections C]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import itertools
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
LUA = BENCH / "wrk" / "inngest.lua"
SCHEMA_VERSION = 1

APP_ID = "fastapi-app"
FN_ID = f"{APP_ID}-test-integration"
SERVE_PATH = "/api/inngest"
STEP_PATH = f"{SERVE_PATH}?fnId={FN_ID}&stepId=step"
EVENT_KEY = "bench-event-key"
EVENT_API_TOKEN = "bench-event-api-token-0001"  # the event API caller (EVENT_API_KEYS)
# Registered URL only (the app validates it is not loopback); nothing connects to it during the run.
SERVE_ORIGIN = "http://app:8000"

SERVER_CPU = "0"
LOAD_CPU = "1"

PACKAGES = (
    "app",
    "inngest",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "h11",
    "pydantic",
    "prometheus-client",
    "python-json-logger",
    "httpx",
    "jcs",
)

TARGETS = {
    "throughput_ratio": ">= 1.20 (app req/s / baseline req/s, median of rounds)",
    "p99_not_worse": "app p99 <= baseline p99 (median of rounds)",
    "cold_start": "<= 1.5 s from exec to /readyz 200 (median)",
    "rss_growth": "< 5 MB over 20,000 invocations (from the fresh process; quick mode: fewer calls)",
    "metrics_latency": "< 10 ms for /metrics with 50 functions (median)",
    "sync_linear": "sync payload time linear in the number of functions (marginal cost growth <= 1.5)",
}


@dataclass
class Profile:
    quick: bool
    rounds: int
    duration: int
    warmup: int
    connections: int
    invocations: int
    cold_starts: int
    metrics_samples: int
    sync_sizes: tuple[int, ...]
    sync_repeats: int
    metrics_functions: int = 50

    @classmethod
    def make(cls, quick: bool) -> Profile:
        if quick:
            return cls(
                quick=True,
                rounds=2,
                duration=2,
                warmup=1,
                connections=32,
                invocations=2_000,
                cold_starts=2,
                metrics_samples=30,
                sync_sizes=(10, 100, 500),
                sync_repeats=2,
            )
        return cls(
            quick=False,
            rounds=5,
            duration=10,
            warmup=3,
            connections=32,
            invocations=20_000,
            cold_starts=5,
            metrics_samples=300,
            sync_sizes=(10, 100, 500),
            sync_repeats=10,
        )


# --------------------------------------------------------------------------------------------------
# Small helpers


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pinning_available() -> bool:
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:
        return False
    return shutil.which("taskset") is not None and {0, 1} <= cpus


def pinned(cmd: list[str], cpu: str, enabled: bool) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if enabled else cmd


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, str], bytes]:
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        res = c.getresponse()
        data = res.read()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, data
    finally:
        if own:
            c.close()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def rnd(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def read_rss_kb(pid: int) -> int:
    """VmRSS of `pid` plus every descendant (a server that forks workers is counted whole)."""
    pids = [pid, *descendants(pid)]
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its descendants (from /proc/<pid>/stat)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def load_average() -> list[float] | None:
    with contextlib.suppress(OSError):
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    return None


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


# --------------------------------------------------------------------------------------------------
# Signed requests, as the Inngest server sends them


def sign(body: bytes, key: str) -> str:
    from inngest._internal import net

    signature = net.sign_request(body, key)
    if isinstance(signature, Exception):
        raise signature
    return signature


def step_request_body(fn_id: str = FN_ID) -> bytes:
    """What the executor POSTs for the first (and, for a step-less function, only) call of a run."""
    event = {
        "name": "test/integration",
        "data": {"message": "Hello"},
        "id": "01JBENCH0000000000000000EV",
        "ts": 1_764_300_000_000,
        "user": {},
    }
    payload = {
        "event": event,
        "events": [event],
        "steps": {},
        "use_api": False,
        "version": 1,
        "ctx": {
            "run_id": "01JBENCH0000000000000000RN",
            "attempt": 0,
            "disable_immediate_execution": False,
            "use_api": False,
            "stack": {"stack": [], "current": 0},
            "fn_id": "00000000-0000-0000-0000-00000000beef",
            "env": "production",
            "max_attempts": 4,
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def signed_headers(body: bytes, key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Inngest-Signature": sign(body, key),
        "X-Inngest-Server-Kind": "cloud",
        "User-Agent": "inngest-bench",
    }


# --------------------------------------------------------------------------------------------------
# Processes


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started: float
    ready_after: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        return read_rss_kb(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Env:
    workdir: Path
    pin: bool
    signing_key: str
    sink_port: int = 0
    servers: list[Server] = field(default_factory=list)

    def app_env(self, port: int) -> dict[str, str]:
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ", "SYSTEMROOT") if k in os.environ}
        env.update(
            {
                "INNGEST_MODE": "self-hosted",
                "INNGEST_APP_ID": APP_ID,
                "INNGEST_BASE_URL": f"http://127.0.0.1:{self.sink_port}",
                "INNGEST_SIGNING_KEY": self.signing_key,
                "INNGEST_EVENT_KEY": EVENT_KEY,
                "EVENT_API_KEYS": EVENT_API_TOKEN,
                # The run reuses one signature (computed once) for longer than the default 5 minutes.
                "SIGNATURE_MAX_AGE_SECONDS": "3600",
                "INNGEST_SERVE_ORIGIN": SERVE_ORIGIN,
                "INNGEST_SYNC_ON_STARTUP": "false",
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "WEB_CONCURRENCY": "1",
                "LOG_LEVEL": "INFO",
                "SHUTDOWN_DRAIN_SECONDS": "0",
                "GRACEFUL_SHUTDOWN_TIMEOUT": "5",
            }
        )
        return env

    def baseline_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
        env.update(
            {
                "INNGEST_SIGNING_KEY": self.signing_key,
                "INNGEST_EVENT_KEY": EVENT_KEY,
                "INNGEST_BASE_URL": f"http://127.0.0.1:{self.sink_port}",
            }
        )
        return env

    def spawn(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        port: int,
        ready_path: str,
        *,
        cpu: str = SERVER_CPU,
        any_status: bool = False,
        timeout: float = 60.0,
        poll: float = 0.005,
        track: bool = True,
    ) -> Server:
        log_path = self.workdir / f"{name}-{port}.log"
        with log_path.open("wb") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(
                pinned(cmd, cpu, self.pin),
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = Server(name, proc, port, log_path, started)
        if track:
            self.servers.append(server)
        deadline = started + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                status, _, _ = http_request(port, "GET", ready_path, timeout=2)
                if any_status or status == 200:
                    server.ready_after = time.perf_counter() - started
                    return server
            except OSError:
                pass
            if time.perf_counter() > deadline:
                server.stop()
                raise RuntimeError(f"{name} not ready after {timeout}s:\n{server.log_tail()}")
            time.sleep(poll)

    def start_sink(self) -> None:
        port = free_port()
        self.sink_port = port
        cmd = [sys.executable, str(BENCH / "sink.py"), "--port", str(port)]
        self.spawn("sink", cmd, dict(os.environ), port, "/", cpu=LOAD_CPU, any_status=True)

    def start_baseline(self, track: bool = True) -> Server:
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "baseline_app:app",
            "--app-dir",
            str(BENCH),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "asyncio",
            "--http",
            "h11",
        ]
        return self.spawn("baseline", cmd, self.baseline_env(), port, SERVE_PATH, any_status=True, track=track)

    def start_app(self, track: bool = True) -> Server:
        port = free_port()
        cmd = [sys.executable, "-m", "app"]
        return self.spawn("app", cmd, self.app_env(port), port, "/readyz", track=track)

    def start_app_with_functions(self, total: int) -> Server:
        port = free_port()
        cmd = [sys.executable, str(BENCH / "app_with_fns.py"), "--functions", str(total)]
        return self.spawn(f"app{total}fns", cmd, self.app_env(port), port, "/readyz", timeout=120)

    def check_alive(self) -> None:
        for server in self.servers:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"{server.name} (pid {server.pid}) exited with {server.proc.returncode}:\n{server.log_tail()}"
                )

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        self.servers.clear()


# --------------------------------------------------------------------------------------------------
# wrk


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


# --------------------------------------------------------------------------------------------------
# Phases


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


def phase_memory(env: Env, prof: Profile, servers: dict[str, Server], body: bytes, hdrs: dict[str, str]) -> dict:
    """RSS of the fresh process, after the first 1,000 calls, and after `prof.invocations` calls in all."""
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


def phase_throughput(
    env: Env, prof: Profile, servers: dict[str, Server], body: bytes, hdrs: dict[str, str]
) -> dict[str, Any]:
    names = list(servers)
    for name in names:  # warm both (JIT-less, but caches, lazy imports, connection setup)
        run_wrk(
            env,
            servers[name].port,
            STEP_PATH,
            duration=prof.warmup,
            connections=prof.connections,
            body=body,
            headers=hdrs,
        )
    rounds: list[dict[str, Any]] = []
    for r in range(prof.rounds):
        order = names if r % 2 == 0 else names[::-1]
        entry: dict[str, Any] = {"order": order}
        for name in order:
            cpu_before = cpu_seconds(servers[name].pid)
            res = run_wrk(
                env,
                servers[name].port,
                STEP_PATH,
                duration=prof.duration,
                connections=prof.connections,
                body=body,
                headers=hdrs,
            )
            cpu_used = cpu_seconds(servers[name].pid) - cpu_before
            if res.errors["status"] or res.errors["timeout"]:
                log(f"warning: {name} round {r}: errors {res.errors}")
            entry[name] = res.as_dict()
            entry[name]["cpu_us_per_request"] = rnd(cpu_used / max(res.requests, 1) * 1e6, 1)
            entry[name]["cpu_utilisation"] = rnd(cpu_used / res.seconds, 3) if res.seconds else None
        entry["ratio"] = rnd(entry["app"]["rps"] / entry["baseline"]["rps"], 3)
        entry["cpu_ratio"] = rnd(
            entry["baseline"]["cpu_us_per_request"] / max(entry["app"]["cpu_us_per_request"], 1e-9), 3
        )
        log(
            f"round {r + 1}/{prof.rounds}: baseline {entry['baseline']['rps']:.0f} req/s "
            f"p99 {entry['baseline']['p99_ms']:.1f} ms | app {entry['app']['rps']:.0f} req/s "
            f"p99 {entry['app']['p99_ms']:.1f} ms | ratio {entry['ratio']:.2f}"
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
        # baseline CPU per request / app CPU per request: less sensitive to other load on the machine
        "cpu_ratio_median": rnd(statistics.median(r["cpu_ratio"] for r in rounds), 3),
    }


def phase_cold_start(env: Env, prof: Profile) -> dict[str, Any]:
    app_times: list[float] = []
    base_times: list[float] = []
    for _ in range(prof.cold_starts):
        server = env.start_app(track=False)
        app_times.append(server.ready_after)
        server.stop()
        server = env.start_baseline(track=False)
        base_times.append(server.ready_after)
        server.stop()
    app_s, base_s = statistics.median(app_times), statistics.median(base_times)
    log(f"cold start: app {app_s:.3f} s, baseline {base_s:.3f} s")
    return {
        "app_readyz_s": rnd(statistics.median(app_times), 3),
        "app_samples_s": [rnd(t, 3) for t in app_times],
        "baseline_first_response_s": rnd(statistics.median(base_times), 3),
        "baseline_samples_s": [rnd(t, 3) for t in base_times],
        "note": "exec of the pinned process to the first /readyz 200 (baseline: first HTTP answer), polled every 5 ms",
    }


def phase_metrics(env: Env, prof: Profile, key: str, main_app: Server) -> dict[str, Any]:
    total = prof.metrics_functions
    _, _, raw = http_request(main_app.port, "GET", "/readyz")
    own = int(json.loads(raw)["functions"])
    server = env.start_app_with_functions(total)
    try:
        _, _, raw = http_request(server.port, "GET", "/readyz")
        functions = json.loads(raw).get("functions")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        registered_only = time_get(server.port, "/metrics", prof.metrics_samples, conn)
        fn_ids = [FN_ID, *[f"{APP_ID}-bench-fn-{i:03d}" for i in range(max(total - own, 0))]]
        called = 0
        for fn_id in fn_ids:  # every function gets its label series in the invocation metrics
            body = step_request_body(fn_id)
            headers = signed_headers(body, key)
            for _ in range(3):
                status, _, _ = http_request(
                    server.port, "POST", f"{SERVE_PATH}?fnId={fn_id}&stepId=step", body, headers, conn=conn
                )
                if status not in (200, 206):
                    raise RuntimeError(f"invoking {fn_id} gave {status}")
                called += 1
        with_fns = time_get(server.port, "/metrics", prof.metrics_samples, conn)
        conn.close()
    finally:
        server.stop()
        env.servers.remove(server)
    conn = http.client.HTTPConnection("127.0.0.1", main_app.port, timeout=30)
    plain = time_get(main_app.port, "/metrics", prof.metrics_samples, conn)
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


def time_get(port: int, path: str, samples: int, conn: http.client.HTTPConnection) -> dict[str, Any]:
    for _ in range(5):
        http_request(port, "GET", path, conn=conn)
    times: list[float] = []
    size = 0
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


def phase_sync(env: Env, prof: Profile, key: str) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for total in prof.sync_sizes:
        build = measure_sync_build(env, total, repeats=max(prof.sync_repeats, 5))
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
            server.stop()
            env.servers.remove(server)
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


def marginal(ys: list[float], xs: list[float]) -> tuple[list[dict[str, Any]], float | None]:
    slopes = [
        {"from": int(x0), "to": int(x1), "ms_per_function": rnd((y1 - y0) / (x1 - x0), 5)}
        for (x0, y0), (x1, y1) in itertools.pairwise(zip(xs, ys, strict=True))
    ]
    first, last = slopes[0]["ms_per_function"], slopes[-1]["ms_per_function"]
    growth = rnd(last / first, 3) if len(slopes) >= 2 and first and first > 0 else None
    return slopes, growth


def measure_sync_build(env: Env, total: int, repeats: int) -> dict[str, Any]:
    port = free_port()
    cmd = pinned(
        [
            sys.executable,
            str(BENCH / "app_with_fns.py"),
            "--functions",
            str(total),
            "--measure-sync-build",
            str(repeats),
        ],
        SERVER_CPU,
        env.pin,
    )
    proc = subprocess.run(cmd, env=env.app_env(port), cwd=ROOT, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"sync build measurement failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float | None]:
    """Least squares y = a + b*x with R^2."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if not sxx:
        return {"fixed_ms": None, "ms_per_function": None, "r2": None}
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return {
        "fixed_ms": rnd(intercept, 3),
        "ms_per_function": rnd(slope, 4),
        "r2": rnd(1 - ss_res / ss_tot, 4) if ss_tot else None,
    }


def phase_events(env: Env, prof: Profile, app: Server) -> dict[str, Any]:
    body = json.dumps({"name": "bench/event", "data": {"n": 1}}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {EVENT_API_TOKEN}"}
    status, _, raw = http_request(app.port, "POST", "/api/events", body, headers)
    if status != 200 or not json.loads(raw).get("ids"):
        raise RuntimeError(f"/api/events gave {status} {raw[:300]!r}")
    run_wrk(
        env,
        app.port,
        "/api/events",
        duration=prof.warmup,
        connections=prof.connections,
        body=body,
        headers=headers,
    )
    res = run_wrk(
        env,
        app.port,
        "/api/events",
        duration=prof.duration,
        connections=prof.connections,
        body=body,
        headers=headers,
    )
    log(f"/api/events: {res.rps:.0f} req/s p99 {res.p99_ms:.1f} ms")
    return {"connections": prof.connections, **res.as_dict(), "sink": "loopback, core 1 (shared with wrk)"}


# --------------------------------------------------------------------------------------------------
# Report


def machine_info(pin: bool) -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    mem_total = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_total = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "memory_mb": mem_total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version[0] if wrk_version else None,
        "pinning": {"servers": SERVER_CPU, "load": LOAD_CPU} if pin else None,
        "git_commit": commit.stdout.strip() or None,
        "packages": versions,
    }


def evaluate(result: dict[str, Any]) -> dict[str, Any]:
    tp = result["throughput"]
    mem = result["memory"]["app"]
    growth = result["sync"]["marginal_growth"]
    checks = {
        "throughput_ratio": (tp["ratio_median"], tp["ratio_median"] >= 1.20),
        "p99_not_worse": (tp["app"]["p99_ms"], tp["app"]["p99_ms"] <= tp["baseline"]["p99_ms"]),
        "cold_start": (result["cold_start"]["app_readyz_s"], result["cold_start"]["app_readyz_s"] <= 1.5),
        "rss_growth": (mem["growth_mb"], mem["growth_mb"] < 5),
        "metrics_latency": (
            result["metrics"]["with_functions"]["median_ms"],
            result["metrics"]["with_functions"]["median_ms"] < 10,
        ),
        "sync_linear": (growth, growth is not None and growth <= 1.5),
    }
    return {name: {"target": TARGETS[name], "value": value, "met": bool(met)} for name, (value, met) in checks.items()}


def print_table(result: dict[str, Any]) -> None:
    tp = result["throughput"]
    mem = result["memory"]
    cs = result["cold_start"]
    met = {k: ("ok" if v["met"] else "MISSED") for k, v in result["targets"].items()}
    rows = [
        (
            "step invocations req/s (median)",
            f"{tp['baseline']['rps']:.0f}",
            f"{tp['app']['rps']:.0f}",
            f"x{tp['ratio_median']:.2f} (>= 1.20) {met['throughput_ratio']}",
        ),
        (
            "  CPU us per request (median)",
            f"{tp['baseline']['cpu_us_per_request']:.0f}",
            f"{tp['app']['cpu_us_per_request']:.0f}",
            f"baseline/app x{tp['cpu_ratio_median']:.2f}",
        ),
        ("  p50 latency ms", f"{tp['baseline']['p50_ms']:.2f}", f"{tp['app']['p50_ms']:.2f}", ""),
        (
            "  p99 latency ms",
            f"{tp['baseline']['p99_ms']:.2f}",
            f"{tp['app']['p99_ms']:.2f}",
            f"not worse {met['p99_not_worse']}",
        ),
        (
            "cold start s (exec -> ready)",
            f"{cs['baseline_first_response_s']:.3f}",
            f"{cs['app_readyz_s']:.3f}",
            f"<= 1.5 {met['cold_start']}",
        ),
        ("idle RSS MB", f"{mem['baseline']['idle_rss_mb']:.1f}", f"{mem['app']['idle_rss_mb']:.1f}", ""),
        (
            f"RSS after {mem['invocations']:,} calls MB",
            f"{mem['baseline']['rss_after_mb']:.1f}",
            f"{mem['app']['rss_after_mb']:.1f}",
            "",
        ),
        (
            "  RSS growth MB",
            f"{mem['baseline']['growth_mb']:.1f}",
            f"{mem['app']['growth_mb']:.1f}",
            f"< 5 {met['rss_growth']}",
        ),
        (
            f"  growth after the first {mem['first_calls']:,} calls MB",
            f"{mem['baseline']['growth_after_first_calls_mb']:.1f}",
            f"{mem['app']['growth_after_first_calls_mb']:.1f}",
            "first-use allocations excluded",
        ),
        (
            f"  app RSS after {mem['app']['calls_before_after_all']:,} calls MB",
            "-",
            f"{mem['app']['rss_after_all_mb']:.1f}",
            "steady state (warm-up excluded)",
        ),
        (
            f"/metrics ms ({result['metrics']['functions_registered']} functions)",
            "-",
            f"{result['metrics']['with_functions']['median_ms']:.2f}",
            f"< 10 {met['metrics_latency']}",
        ),
    ]
    for size, data in result["sync"]["sizes"].items():
        rows.append(
            (
                f"sync {size} fns: PUT ms / payload build ms",
                "-",
                f"{data['min_ms']:.1f} / {data['build_min_ms']:.2f}",
                f"build {data['build_per_function_us']:.0f} us/fn",
            )
        )
    rows.append(
        (
            "  marginal cost growth (build / PUT)",
            "-",
            f"x{result['sync']['marginal_growth']} / x{result['sync']['put_marginal_growth']}",
            f"~1 = linear {met['sync_linear']}",
        )
    )
    ev = result["events"]
    rows.append(("/api/events req/s (sink)", "-", f"{ev['rps']:.0f}", f"p99 {ev['p99_ms']:.1f} ms"))
    widths = [max(len(r[i]) for r in [("metric", "baseline", "app", "target"), *rows]) for i in range(4)]
    header = ("metric", "baseline", "app", "target")
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i in (0, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the app against the bare inngest-py FastAPI example")
    parser.add_argument("--quick", action="store_true", help="short version (under a minute)")
    parser.add_argument("--out", type=Path, help="JSON output path")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=int, help="seconds per wrk round")
    parser.add_argument("--connections", type=int)
    parser.add_argument("--keep-logs", action="store_true", help="keep server logs (path printed)")
    args = parser.parse_args(argv)

    prof = Profile.make(args.quick)
    if args.rounds:
        prof.rounds = args.rounds
    if args.duration:
        prof.duration = args.duration
    if args.connections:
        prof.connections = args.connections
    out = args.out or BENCH / "results" / ("latest-quick.json" if prof.quick else "latest.json")

    if shutil.which("wrk") is None:
        print("bench: wrk not found; install it (apt-get install wrk)", file=sys.stderr)
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
        "machine": machine_info(pin),
        "config": {
            "rounds": prof.rounds,
            "duration_s": prof.duration,
            "warmup_s": prof.warmup,
            "connections": prof.connections,
            "wrk_threads": 1,
            "invocations_for_rss": prof.invocations,
            "baseline": "benchmarks/baseline_app.py, uvicorn --loop asyncio --http h11 (default install)",
            "app": "python -m app, INNGEST_MODE=self-hosted, signature checks, metrics and JSON logs on",
            "request": f"POST {STEP_PATH} (signed, X-Inngest-Signature computed once)",
        },
    }
    try:
        env.start_sink()
        body = step_request_body()
        hdrs = signed_headers(body, env.signing_key)
        servers = {"baseline": env.start_baseline(), "app": env.start_app()}
        result["checks"] = {name: check_invocation(s, body, hdrs) for name, s in servers.items()}
        log(f"servers up (pinned: {pin}); signed call ok, unsigned call refused on both")

        result["memory"] = phase_memory(env, prof, servers, body, hdrs)
        env.check_alive()
        result["throughput"] = phase_throughput(env, prof, servers, body, hdrs)
        total_calls = prof.invocations + sum(r["app"]["requests"] for r in result["throughput"]["rounds"])
        result["memory"]["app"]["rss_after_all_mb"] = rnd(servers["app"].rss_kb() / 1024)
        result["memory"]["app"]["calls_before_after_all"] = total_calls
        steady_calls = total_calls - prof.invocations
        result["memory"]["app"]["steady_growth_mb_per_20k"] = rnd(
            (result["memory"]["app"]["rss_after_all_mb"] - result["memory"]["app"]["rss_after_mb"])
            * 20_000
            / max(steady_calls, 1)
        )
        env.check_alive()
        result["events"] = phase_events(env, prof, servers["app"])
        env.check_alive()
        result["metrics"] = phase_metrics(env, prof, env.signing_key, servers["app"])
        env.check_alive()
        result["sync"] = phase_sync(env, prof, env.signing_key)
        env.check_alive()
        result["cold_start"] = phase_cold_start(env, prof)
    finally:
        env.stop_all()
        if args.keep_logs:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    result["load_average"] = {"start": load_start, "end": load_average()}
    result["targets"] = evaluate(result)
    result["elapsed_s"] = rnd(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"load average {load_start} -> {result['load_average']['end']} (other work on the machine skews req/s)")
    print(f"wrote {shown} in {result['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
