"""The app's Prometheus metrics as the tests read them: scraped from its metrics port (a process), or
straight from the registry (an app built in-process, whose /metrics is not an ASGI route)."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY, generate_latest


def registry_text() -> str:
    """What the metrics port serves for an in-process app (one process: the default registry)."""
    return generate_latest(REGISTRY).decode()


def scrape(port: int | str, host: str = "127.0.0.1", timeout: float = 10) -> str:
    """GET /metrics from an app process' METRICS_PORT."""
    answer = httpx.get(f"http://{host}:{port}/metrics", timeout=timeout)
    answer.raise_for_status()
    return answer.text
