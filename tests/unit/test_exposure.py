"""What the app's port tells whoever reaches it: no schema outside dev, readiness as a bare status, bounded
metric labels whatever the method, and a sync failure logged once rather than at every retry."""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tests.support import wait_until

Client = Callable[..., TestClient]
STANDARD_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}


@pytest.mark.parametrize("mode", ["self-hosted", "cloud"])
def test_no_schema_or_docs_outside_dev(client_factory: Client, mode: str) -> None:
    client = client_factory(mode)
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path
    # The schema still exists in-process (the fuzz tests generate requests from it).
    assert client.app.openapi()["paths"].keys() == {"/api/events"}  # type: ignore[attr-defined]


def test_dev_mode_serves_the_schema_and_docs(client_factory: Client) -> None:
    client = client_factory("dev")
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def _http_series() -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["handler"], s.labels["method"], s.labels["status"]): s.value
        for metric in REGISTRY.collect()
        if metric.name == "http_requests"
        for s in metric.samples
        if s.name == "http_requests_total"
    }


def test_unknown_methods_share_one_label_value(client_factory: Client) -> None:
    client = client_factory("self-hosted")
    rng = random.Random(20240601)
    methods = {"X" + "".join(rng.choices(string.ascii_uppercase, k=7)) for _ in range(50)}
    assert len(methods) == 50 and not methods & STANDARD_METHODS
    before = _http_series()
    statuses = {client.request(method, "/api/events").status_code for method in methods}
    after = _http_series()
    new = {labels: value for labels, value in after.items() if labels not in before}
    assert len(new) == 1, sorted(new)  # 50 methods, one series
    ((handler, method, status),) = new
    assert (handler, method, {int(status)}) == ("/api/events", "other", statuses)
    assert new[(handler, method, status)] == 50
    assert not {m for _, m, _ in after} - STANDARD_METHODS - {"other"}


def test_a_failing_sync_is_logged_once_not_at_every_retry(
    client_factory: Client, caplog: pytest.LogCaptureFixture
) -> None:
    def attempts() -> float:
        return REGISTRY.get_sample_value("app_inngest_sync_attempts_total", {"outcome": "unreachable"}) or 0.0

    before = attempts()
    with caplog.at_level(logging.DEBUG, logger="app.sync"):
        # Self-hosted against a port nothing listens on: the app's own sync retries with backoff.
        client_factory("self-hosted", inngest_sync_on_startup=True)
        wait_until(lambda: attempts() >= before + 3, 30, what="three failed sync attempts")
    observed = [r for r in caplog.records if r.name == "app.sync" and r.levelno >= logging.INFO]
    assert [r.getMessage() for r in observed] == ["sync failed"], [r.getMessage() for r in observed]
    assert observed[0].outcome == "unreachable"  # type: ignore[attr-defined]
    repeats = [r for r in caplog.records if r.getMessage() == "sync: same answer again"]
    assert len(repeats) >= 2  # the later attempts are there, at debug level
