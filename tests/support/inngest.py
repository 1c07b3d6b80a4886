"""The real Inngest server (`inngest start` / `inngest dev`) as a process the tests drive.

The binary comes from `scripts/inngest_bin.py` (the version docker-compose.yml pins; built from its Go
module when there is no cached build). Every port the server opens is chosen here, so several servers
and several test sessions share one machine. Results are read from the server's own REST API (Bearer
signing key), never from anything the app says about itself.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.process import log_tail, stop_process
from tests.support.tools import built_binary

_BINARY: str | None = None
TERMINAL = frozenset({"Completed", "Failed", "Cancelled"})
# The same, as the GraphQL API spells run states.
ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


def inngest_binary() -> str:
    """Path of the pinned `inngest` binary (built once per machine), or skip/fail saying what to install."""
    global _BINARY
    if _BINARY is None:
        _BINARY = built_binary("inngest_bin.py")
    return _BINARY


def new_signing_key() -> str:
    """`inngest start` requires even-length hex."""
    return secrets.token_hex(32)


@dataclass
class InngestServer:
    """One `inngest start` (or `dev`) process on loopback. `start()`/`stop()`/`kill()` may repeat: a restart
    keeps the same ports and data directory, as a container restart keeps its volume."""

    sdk_urls: Sequence[str] = ()
    signing_key: str = field(default_factory=new_signing_key)
    event_key: str = field(default_factory=lambda: secrets.token_hex(16))
    data_dir: Path | None = None
    postgres_uri: str | None = None
    redis_uri: str | None = None
    poll_interval: int = 1
    extra_args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    dev: bool = False
    port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    gateway_grpc_port: int = field(default_factory=free_port)
    executor_grpc_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        binary = inngest_binary()
        urls = [arg for url in self.sdk_urls for arg in ("--sdk-url", url)]
        if self.dev:
            return [binary, "dev", "--host", "127.0.0.1", "--port", str(self.port), "--no-discovery", *urls]
        storage = []
        if self.postgres_uri:
            storage += ["--postgres-uri", self.postgres_uri]
        else:
            assert self.data_dir is not None
            storage += ["--sqlite-dir", str(self.data_dir)]
        if self.redis_uri:
            storage += ["--redis-uri", self.redis_uri]
        return [
            binary,
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--connect-gateway-port",
            str(self.gateway_port),
            "--connect-gateway-grpc-port",
            str(self.gateway_grpc_port),
            "--connect-executor-grpc-port",
            str(self.executor_grpc_port),
            "--signing-key",
            self.signing_key,
            "--event-key",
            self.event_key,
            "--poll-interval",
            str(self.poll_interval),
            *storage,
            *urls,
            *self.extra_args,
        ]

    def start(self, wait: bool = True, timeout: float = 60) -> InngestServer:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="inngest-server-")
        if self.data_dir is None and not self.postgres_uri:
            self.data_dir = Path(self._tmp.name) / "data"
            self.data_dir.mkdir()
        self.log_path = Path(self._tmp.name) / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env={**env, **self.env}, cwd=self._tmp.name
            )
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 60) -> None:
        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"inngest exited with {self.proc.returncode}:\n{self.log_tail()}")
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200

        wait_until(healthy, timeout, interval=0.1, what=f"inngest /health on {self.url}")

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        return stop_process(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # --- the server's own API -------------------------------------------------------------------

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.signing_key}"}, timeout=10)

    def send(self, name: str, data: dict[str, Any] | None = None, **extra: Any) -> str:
        """Send one event straight to the server (`POST /e/{key}`); returns its id."""
        answer = httpx.post(f"{self.url}/e/{self.event_key}", json={"name": name, "data": data or {}, **extra})
        answer.raise_for_status()
        (event_id,) = answer.json()["ids"]
        return str(event_id)

    def send_many(self, events: Sequence[dict[str, Any]]) -> list[str]:
        """Send a batch of `{"name", "data", ...}` events in one request; returns their ids in order."""
        answer = httpx.post(f"{self.url}/e/{self.event_key}", json=list(events), timeout=30)
        answer.raise_for_status()
        return [str(event_id) for event_id in answer.json()["ids"]]

    def runs_for_event(self, event_id: str, api: httpx.Client | None = None) -> list[dict[str, Any]]:
        """The runs one event started (REST); pass `api` (from `api()`) to reuse one connection for many."""
        with contextlib.nullcontext(api) if api else self.api() as client:
            answer = client.get(f"/v1/events/{event_id}/runs")
            answer.raise_for_status()
            return list(answer.json().get("data") or [])

    def run(self, run_id: str) -> dict[str, Any]:
        with self.api() as api:
            answer = api.get(f"/v1/runs/{run_id}")
            answer.raise_for_status()
            return dict(answer.json()["data"])

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The server's GraphQL API (`/v0/gql`, what its UI reads): registered apps, functions, runs."""
        answer = httpx.post(f"{self.url}/v0/gql", json={"query": query, "variables": variables or {}}, timeout=10)
        answer.raise_for_status()
        body = answer.json()
        assert not body.get("errors"), body["errors"]
        return dict(body["data"])

    def functions(self) -> dict[str, dict[str, Any]]:
        """The registered functions by slug (`<app id>-<fn id>`), with triggers, configuration and app URL."""
        query = (
            "{ functions { id slug triggers { type value } app { name url }"
            " configuration { retries { value } concurrency { limit { value } key scope } } } }"
        )
        return {f["slug"]: f for f in self.gql(query)["functions"] or []}

    def function_runs(self, slug: str) -> list[dict[str, Any]]:
        """Every run of one function, oldest first: id, status (QUEUED, RUNNING, COMPLETED...), queued/started/
        ended times. The API pages by 40 at most, whatever `first` asks for."""
        fn_id = self.functions()[slug]["id"]
        query = (
            "query($f: [UUID!], $after: String) { runs(first: 40, after: $after,"
            " orderBy: [{field: QUEUED_AT, direction: ASC}],"
            ' filter: {from: "2000-01-01T00:00:00Z", functionIDs: $f})'
            " { edges { node { id status queuedAt startedAt endedAt eventName } cursor }"
            " pageInfo { hasNextPage } } }"
        )
        runs: dict[str, dict[str, Any]] = {}  # by id: runs queued in the same instant may repeat across pages
        after: str | None = None
        while True:
            page = self.gql(query, {"f": [fn_id], "after": after})["runs"]
            runs.update((edge["node"]["id"], edge["node"]) for edge in page["edges"])
            if not page["pageInfo"]["hasNextPage"] or not page["edges"]:
                return list(runs.values())
            after = page["edges"][-1]["cursor"]

    def run_count(self, function_id: str, statuses: frozenset[str] = ENDED) -> int:
        """How many runs of one function (its UUID, `functions()[slug]["id"]`) are in `statuses`: one cheap
        query, for waiting on many runs without listing them."""
        query = (
            "query($f: [UUID!], $s: [FunctionRunStatus!]) { runs(first: 1,"
            ' filter: {from: "2000-01-01T00:00:00Z", functionIDs: $f, status: $s},'
            " orderBy: [{field: QUEUED_AT, direction: ASC}]) { totalCount } }"
        )
        return int(self.gql(query, {"f": [function_id], "s": sorted(statuses)})["runs"]["totalCount"])

    def run_steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The steps of one run so far, by name: `status` (WAITING, COMPLETED...), `attempts` (retries) and
        `stepOp` (RUN, SLEEP, WAIT_FOR_EVENT...; null for the function's own error)."""
        query = "query($r: String!) { run(runID: $r) { trace { childrenSpans { name status attempts stepOp } } } }"
        try:
            trace = (self.gql(query, {"r": run_id})["run"] or {}).get("trace") or {}
        except AssertionError:  # "no rows": the run's history is written a moment after the run starts
            return {}
        return {span["name"]: span for span in trace.get("childrenSpans") or []}

    def step_times(self, run_id: str) -> dict[str, tuple[str, str]]:
        """When the server started and ended each finished step of one run, by name (RFC 3339 times)."""
        query = "query($r: String!) { run(runID: $r) { trace { childrenSpans { name startedAt endedAt } } } }"
        trace = (self.gql(query, {"r": run_id})["run"] or {}).get("trace") or {}
        return {
            span["name"]: (span["startedAt"], span["endedAt"])
            for span in trace.get("childrenSpans") or []
            if span["startedAt"] and span["endedAt"]
        }

    def invoke(self, slug: str, data: dict[str, Any] | None = None) -> None:
        """Run a function now, as the UI's "Invoke" button does (the way to run a cron function on demand)."""
        mutation = "mutation($slug: String!, $data: Map) { invokeFunction(functionSlug: $slug, data: $data) }"
        assert self.gql(mutation, {"slug": slug, "data": data or {}})["invokeFunction"] is True

    def wait_functions(self, slugs: set[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
        """Wait until exactly `slugs` are registered (a sync happened); returns them."""

        def registered() -> dict[str, dict[str, Any]] | None:
            fns = self.functions()
            return fns if set(fns) == slugs else None

        return wait_until(
            registered,
            timeout,
            interval=0.1,
            what=f"functions {sorted(slugs)} on the server",
        )

    def wait_run_finished(self, event_id: str, timeout: float = 60, runs: int = 1) -> list[dict[str, Any]]:
        """The runs `event_id` started, once `runs` of them exist and all are in a terminal state."""

        def finished() -> list[dict[str, Any]] | None:
            found = self.runs_for_event(event_id)
            if len(found) < runs:
                return None
            # Per run: the event's run list can say "Completed" (with ended_at null) for a run in progress.
            detailed = [self.run(r["run_id"]) for r in found]
            return detailed if all(r.get("status") in TERMINAL for r in detailed) else None

        return wait_until(finished, timeout, interval=0.25, what=f"runs of event {event_id} to finish")


@contextlib.contextmanager
def inngest_server(**options: Any) -> Iterator[InngestServer]:
    """A started server, stopped and its data removed afterwards."""
    server = InngestServer(**options)
    try:
        yield server.start()
    finally:
        server.close()


def wait_port_free(port: int, timeout: float = 10) -> None:
    """After a SIGKILL the port may linger briefly; wait before restarting on it."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return
        time.sleep(0.1)
