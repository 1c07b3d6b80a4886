"""Process handles and pytest fixtures for end-to-end tests against the stand-in.

Reuse from any conftest: `from tests.standin.fixtures import *  # noqa: F403` gives the fixtures
`standin` (a running stand-in, no sdk-url), `standin_factory`, `app_factory` and `stack` (stand-in + the
app, synced). The handles (`StandInProcess`, `AppProcess`) work outside pytest too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ROOT, free_port, wait_until
from tests.support.metrics import scrape
from tests.support.process import clean_env, closed_after

# The event API token of every app process the tests start (EVENT_API_KEYS).
EVENT_API_TOKEN = secrets.token_hex(16)
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class _Process:
    """A child process with its output in a log file (shown when a test fails)."""

    name = "process"

    def __init__(self, log_dir: Path) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = log_dir / f"{self.name}-{secrets.token_hex(3)}.log"
        self.max_rss_kib = 0

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sample_rss(self) -> int:
        if self.alive():
            with contextlib.suppress(OSError):
                self.max_rss_kib = max(self.max_rss_kib, rss_kib(self.pid))
        return self.max_rss_kib

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, wait, then SIGKILL if needed. Returns the exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, lines: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


class StandInProcess(_Process):
    """`python -m tests.standin` on a free loopback port, controlled over HTTP."""

    name = "standin"

    def __init__(
        self,
        log_dir: Path,
        *,
        sdk_urls: list[str] = (),  # type: ignore[assignment]
        signing_key: str | None = None,
        event_key: str | None = None,
        port: int | None = None,
        poll_interval: float = 0.2,
        time_scale: float = 0.01,
        retry_interval: float = 0.0,
        queue_workers: int = 100,
    ) -> None:
        super().__init__(log_dir)
        self.port = port or free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.signing_key = signing_key or secrets.token_hex(32)
        self.event_key = event_key or secrets.token_hex(16)
        self.args = [
            "--port", str(self.port),
            "--signing-key", self.signing_key,
            "--event-key", self.event_key,
            "--poll-interval", str(poll_interval),
            "--time-scale", str(time_scale),
            "--retry-interval", str(retry_interval),
            "--queue-workers", str(queue_workers),
        ]  # fmt: skip
        for url in sdk_urls:
            self.args += ["--sdk-url", url]
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, wait: bool = True) -> StandInProcess:
        self._spawn([PYTHON, "-m", "tests.standin", *self.args], dict(os.environ))
        if wait:
            wait_until(
                lambda: self.alive() and self.http.get("/health").status_code == 200, 15, what="stand-in /health"
            )
        return self

    def close(self) -> None:
        self.stop()
        self.http.close()

    # --- the server's public API ---
    def send(self, name: str, data: dict[str, Any] | None = None, **extra: Any) -> str:
        """POST one event to /e/{key}; returns its internal id."""
        res = self.http.post(f"/e/{self.event_key}", json={"name": name, "data": data or {}, **extra})
        res.raise_for_status()
        return str(res.json()["ids"][0])

    def send_many(self, events: list[dict[str, Any]]) -> list[str]:
        res = self.http.post(f"/e/{self.event_key}", json=events)
        res.raise_for_status()
        return list(res.json()["ids"])

    # --- the test API ---
    def state(self) -> dict[str, Any]:
        return dict(self.http.get("/test/state").json())

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get("/test/stats").json())

    def runs(self, function: str | None = None, status: str | None = None, full: bool = False) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"function": function, "status": status, "full": "1" if full else None}.items() if v}
        return list(self.http.get("/test/runs", params=params).json())

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/test/runs/{run_id}").json())

    def runs_for_event(self, event_id: str) -> list[dict[str, Any]]:
        return list(self.http.get("/test/runs", params={"event_id": event_id}).json())

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return list(self.http.get("/test/events", params={"name": name} if name else None).json())

    def calls(self) -> list[dict[str, Any]]:
        return list(self.http.get("/test/calls").json())

    def fire_cron(self, fn_id: str) -> str:
        res = self.http.post(f"/test/cron/{fn_id}")
        res.raise_for_status()
        return str(res.json()["run_id"])

    def sync(self, url: str) -> dict[str, Any]:
        return dict(self.http.post("/test/sync", params={"url": url}).json())

    def wait_synced(self, timeout: float = 20) -> dict[str, Any]:
        """Wait until functions are registered and every `--sdk-url` is marked synced (polling stopped)."""

        def synced() -> dict[str, Any] | None:
            s = self.state()
            return s if s["functions"] and all(s["synced"].values()) else None

        return dict(wait_until(synced, timeout, what="a synced app"))

    def wait_runs(
        self, count: int, function: str | None = None, timeout: float = 60, sample: Callable[[], Any] | None = None
    ) -> list[dict[str, Any]]:
        """Wait until `count` runs (of `function`) have ended; returns all of them."""

        def ended() -> bool:
            if sample:
                sample()
            by_fn = self.summary()["runs"]
            counts: dict[str, int] = {}
            for fn_id, statuses in by_fn.items():
                if not function or fn_id == function or fn_id.endswith("-" + function):
                    for status, n in statuses.items():
                        counts[status] = counts.get(status, 0) + n
            total = sum(counts.values())
            return total >= count and counts.get("Running", 0) == 0

        wait_until(ended, timeout, interval=0.25, what=f"{count} finished runs of {function or 'any'}")
        return self.runs(function)

    def summary(self) -> dict[str, Any]:
        """Run counts by function and status, and the number of runs waiting for an event."""
        return dict(self.http.get("/test/summary").json())


class AppProcess(_Process):
    """The product as it runs in its container: `python -m app`, self-hosted, against a stand-in."""

    name = "app"

    def __init__(
        self, log_dir: Path, standin: StandInProcess, *, port: int | None = None, module: str = "app", **env: str
    ) -> None:
        super().__init__(log_dir)
        self.module = module  # a test-only entry point may wrap the product (e.g. extra functions)
        self.port = port or free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.serve_url = f"{self.url}/api/inngest"
        self.side_effects_db = log_dir / f"side-effects-{self.port}.sqlite3"
        self.env = {
            **clean_env(),
            "INNGEST_MODE": "self-hosted",
            "INNGEST_BASE_URL": standin.url,
            "INNGEST_SIGNING_KEY": standin.signing_key,
            "INNGEST_EVENT_KEY": standin.event_key,
            "EVENT_API_KEYS": EVENT_API_TOKEN,
            "INNGEST_SERVE_ORIGIN": self.url,
            "INNGEST_ALLOW_LOOPBACK_ORIGIN": "true",  # the server reaches the app over loopback here
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
            "SHUTDOWN_DRAIN_SECONDS": "0",
            "INNGEST_SYNC_TIMEOUT": "30",
            "LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(log_dir / f"metrics-{self.port}"),
            "SIDE_EFFECTS_DB": str(self.side_effects_db),
            **env,
        }
        # The tests are the event API's one caller: every request carries its token.
        self.http = httpx.Client(base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {EVENT_API_TOKEN}"})

    def start(self, wait_ready: bool = True, timeout: float = 30) -> AppProcess:
        self._spawn([PYTHON, "-m", self.module], self.env)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"app exited ({self.proc and self.proc.returncode}):\n{self.log_tail()}")
            return self.http.get("/readyz").status_code == 200

        wait_until(ready, timeout, what="app /readyz")

    def restart(self, wait_ready: bool = True, module: str | None = None) -> AppProcess:
        """Stop (SIGTERM) and start again on the same port: a redeploy, optionally of another build."""
        self.stop()
        self.module = module or self.module
        return self.start(wait_ready)

    def readyz(self) -> dict[str, Any]:
        res = self.http.get("/readyz")
        return {"status_code": res.status_code, **res.json()}

    def metrics(self) -> str:
        return scrape(self.env["METRICS_PORT"])

    def sync_attempts(self, outcome: str | None = None) -> float:
        """Sync PUTs the app answered (server, job or its own), all or of one outcome."""
        labels = {"outcome": outcome} if outcome else {}
        return metric_value(self.metrics(), "app_inngest_sync_attempts_total", **labels)

    def close(self) -> None:
        self.stop()
        self.http.close()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


# --- pytest fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def e2e_log_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A temp dir for process logs; the logs' tails are printed when the test fails."""
    with tempfile.TemporaryDirectory(prefix="e2e-") as tmp:
        yield Path(tmp)


@pytest.fixture
def standin_factory(e2e_log_dir: Path) -> Iterator[Callable[..., StandInProcess]]:
    """Start stand-ins: `standin_factory(sdk_urls=[...], time_scale=0.01, start=True)`."""
    made: list[StandInProcess] = []

    def make(start: bool = True, **kwargs: Any) -> StandInProcess:
        proc = StandInProcess(e2e_log_dir, **kwargs)
        made.append(proc)
        return proc.start() if start else proc

    yield make
    for proc in made:
        proc.close()


@pytest.fixture
def standin(standin_factory: Callable[..., StandInProcess]) -> StandInProcess:
    """A running stand-in without `--sdk-url` (the app syncs itself at start)."""
    return standin_factory()


@pytest.fixture
def app_factory(e2e_log_dir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., AppProcess]]:
    """Start the app: `app_factory(standin, start=True, **env)`. Failing tests print the app's log."""
    with closed_after(request, lambda proc: proc.log_path.name) as made:

        def make(standin: StandInProcess, start: bool = True, **kwargs: Any) -> AppProcess:
            proc = AppProcess(e2e_log_dir, standin, **kwargs)
            made.append(proc)
            return proc.start() if start else proc

        yield make


@pytest.fixture
def stack(standin: StandInProcess, app_factory: Callable[..., AppProcess]) -> tuple[StandInProcess, AppProcess]:
    """The stand-in and the app, started in the compose order (server, then app), synced."""
    app = app_factory(standin)
    standin.wait_synced()
    return standin, app
