"""`/healthz` probed in the background while an attack runs: every answer's latency, and every failure."""

from __future__ import annotations

import threading
import time

import httpx

from tests.support import wait_until


class HealthProbe:
    """GET /healthz on a fresh connection every `interval` s from a thread; anything but a 200 within
    `timeout` s is a failure. Entering waits for the first answers, leaving for a few more (the app must
    still answer after the attack)."""

    def __init__(self, url: str, interval: float = 0.2, timeout: float = 2.0) -> None:
        self.url, self.interval, self.timeout = url, interval, timeout
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="healthz-probe", daemon=True)

    @property
    def answered(self) -> int:
        return len(self.latencies)

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                res = httpx.get(f"{self.url}/healthz", timeout=self.timeout, headers={"Connection": "close"})
                if res.status_code == 200:
                    self.latencies.append(time.monotonic() - started)
                else:
                    self.failures.append(f"HTTP {res.status_code}")
            except httpx.HTTPError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(self.interval)

    def __enter__(self) -> HealthProbe:
        self.thread.start()
        wait_until(lambda: self.answered >= 3 or self.failures, 10, what="/healthz probes")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                answered = self.answered
                wait_until(lambda: self.answered >= answered + 3, 10, what="/healthz probes after the attack")
        finally:
            self.stop.set()
            self.thread.join(5)
