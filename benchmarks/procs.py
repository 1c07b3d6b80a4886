"""The processes of a run: pinning to cores, start and readiness, RSS and CPU time from /proc, stopping."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.config import APP_ID, BENCH, EVENT_API_TOKEN, EVENT_KEY, LOAD_CPU, SERVE_ORIGIN, SERVE_PATH, SERVER_CPU
from tests.support import ROOT, free_port, wait_until
from tests.support.process import log_tail, stop_process


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
    """One request on loopback; http.client rather than httpx keeps the client's own cost out of the timings."""
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        try:
            c.request(method, path, body=body, headers=headers or {})
            res = c.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            if own:
                raise
            # A kept-alive connection the app closed meanwhile (HTTP_IDLE_TIMEOUT_SECONDS on a busy machine):
            # reconnect once, as HTTP clients do.
            c.close()
            c.request(method, path, body=body, headers=headers or {})
            res = c.getresponse()
        data = res.read()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, data
    finally:
        if own:
            c.close()


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


def read_rss_kb(pid: int) -> int:
    """VmRSS of `pid` plus every descendant (a server that forks workers is counted whole)."""
    total = 0
    for p in [pid, *descendants(pid)]:
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


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started: float
    ready_after: float = 0.0
    metrics_port: int = 0  # the app's METRICS_PORT (/metrics is not on `port`)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        return read_rss_kb(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.proc, timeout=timeout)


@dataclass
class Env:
    workdir: Path
    pin: bool
    signing_key: str
    sink_port: int = 0
    servers: list[Server] = field(default_factory=list)

    def api_base(self, api_base: str | None) -> str:
        """The Inngest API the server talks to: a real server's URL, else the loopback stand-in (the sink)."""
        return api_base or f"http://127.0.0.1:{self.sink_port}"

    def app_env(self, port: int, api_base: str | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ", "SYSTEMROOT") if k in os.environ}
        env.update(
            {
                "INNGEST_MODE": "self-hosted",
                "INNGEST_APP_ID": APP_ID,
                "INNGEST_BASE_URL": self.api_base(api_base),
                "INNGEST_SIGNING_KEY": self.signing_key,
                "INNGEST_EVENT_KEY": EVENT_KEY,
                "EVENT_API_KEYS": EVENT_API_TOKEN,
                # The run reuses one signature (computed once) for longer than the default 5 minutes.
                "SIGNATURE_MAX_AGE_SECONDS": "3600",
                "INNGEST_SERVE_ORIGIN": SERVE_ORIGIN,
                "INNGEST_SYNC_ON_STARTUP": "false",
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "METRICS_PORT": str(free_port()),
                "WEB_CONCURRENCY": "1",
                "LOG_LEVEL": "INFO",
                "SHUTDOWN_DRAIN_SECONDS": "0",
                "GRACEFUL_SHUTDOWN_TIMEOUT": "5",
                # Not the default /tmp file: other runs on the machine may use that one.
                "SIDE_EFFECTS_DB": str(self.workdir / "side-effects.sqlite3"),
            }
        )
        if api_base:  # a real server on this host calls the app back over loopback
            env.update({"INNGEST_SERVE_ORIGIN": f"http://127.0.0.1:{port}", "INNGEST_ALLOW_LOOPBACK_ORIGIN": "true"})
        return env

    def baseline_env(self, api_base: str | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
        env.update(
            {
                "INNGEST_SIGNING_KEY": self.signing_key,
                "INNGEST_EVENT_KEY": EVENT_KEY,
                "INNGEST_BASE_URL": self.api_base(api_base),
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

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log_tail()}")
            status, _, _ = http_request(port, "GET", ready_path, timeout=2)
            return any_status or status == 200

        try:
            wait_until(ready, timeout, interval=poll, what=f"{name} ready")
        except AssertionError as exc:
            server.stop()
            raise RuntimeError(f"{exc}:\n{server.log_tail()}") from None
        server.ready_after = time.perf_counter() - started
        return server

    def start_sink(self) -> None:
        port = free_port()
        self.sink_port = port
        cmd = [sys.executable, str(BENCH / "sink.py"), "--port", str(port)]
        self.spawn("sink", cmd, dict(os.environ), port, "/", cpu=LOAD_CPU, any_status=True)

    def start_baseline(self, track: bool = True, api_base: str | None = None) -> Server:
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.baseline_app:app",
            "--app-dir",
            str(ROOT),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "asyncio",
            "--http",
            "h11",
        ]
        env = self.baseline_env(api_base)
        return self.spawn("baseline", cmd, env, port, SERVE_PATH, any_status=True, track=track)

    def start_app(self, track: bool = True) -> Server:
        port = free_port()
        cmd = [sys.executable, "-m", "app"]
        env = self.app_env(port)
        server = self.spawn("app", cmd, env, port, "/readyz", track=track)
        server.metrics_port = int(env["METRICS_PORT"])
        return server

    def start_app_with_workflow(self, api_base: str) -> Server:
        """The app (its own functions and the end-to-end workflow) against a real server at `api_base`."""
        port = free_port()
        cmd = [sys.executable, str(BENCH / "app_with_fns.py"), "--e2e-workflow"]
        return self.spawn("app-e2e", cmd, self.app_env(port, api_base), port, "/readyz")

    def start_app_with_functions(self, total: int) -> Server:
        port = free_port()
        cmd = [sys.executable, str(BENCH / "app_with_fns.py"), "--functions", str(total)]
        env = self.app_env(port)
        server = self.spawn(f"app{total}fns", cmd, env, port, "/readyz", timeout=120)
        server.metrics_port = int(env["METRICS_PORT"])
        return server

    def stop_tracked(self, server: Server) -> None:
        server.stop()
        self.servers.remove(server)

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
