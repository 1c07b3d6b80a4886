"""The stand-in's shared state and task helpers; each concern adds its methods in its own module."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections import Counter
from typing import Any

from tests.standin import wire
from tests.standin.model import (
    Function,
    Options,
    Pause,
    Run,
)


class Core:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.functions: dict[str, Function] = {}
        self.apps: dict[str, dict[str, Any]] = {}  # app name -> {url, checksum, app_id, ...}
        self.synced: dict[str, bool] = {self._norm(u): False for u in opts.sdk_urls}
        self.puts: list[dict[str, Any]] = []
        self.registrations: list[dict[str, Any]] = []
        self.runs: dict[str, Run] = {}
        self.events: list[dict[str, Any]] = []
        self.event_runs: dict[str, list[str]] = {}
        self.idempotency: set[tuple[str, str]] = set()
        self.pauses: list[Pause] = []
        self.stats: Counter[str] = Counter()
        self.per_fn: dict[str, Counter[str]] = {}  # per function: responses by status, ops by opcode
        self.errors: list[dict[str, Any]] = []  # failed SDK calls (bounded)
        self.calls: list[tuple[float, float, str]] = []  # (start, end, outcome) of every SDK call
        self.pending = 0  # queue depth: scheduled SDK calls not yet finished
        self._slots = asyncio.Semaphore(max(1, opts.queue_workers))
        self._fn_slots: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wire = wire.Client(timeout=opts.request_timeout)  # executor calls
        self._ping = wire.Client(timeout=10.0, keepalive=0.0)  # sync PUTs (deploy.Client: 10 s timeout)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _later(self, delay: float, coro_fn: Any, *args: Any) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), lambda: self._spawn(coro_fn(*args)))

    @staticmethod
    def _norm(url: str) -> str:
        if "://" not in url:
            url = "http://" + url
        parts = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
