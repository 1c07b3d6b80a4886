"""Fixtures for the app's own tests: settings per mode, a test client, and requests signed like the server's."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from inngest._internal import net, transforms
from inngest._internal.net import sign_request

from app import sdk
from app.main import create_app
from app.migrate import upgrade
from app.settings import Settings, load_settings
from tests.standin.protocol import canonical_json

SIGNING_KEY = secrets.token_hex(32)
EVENT_KEY = "test-event-key"
EVENT_API_TOKEN = secrets.token_hex(16)  # the event API caller every test client is
APP_ID = "fastapi-app"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build settings explicitly; nothing from the developer's shell leaks in."""
    import os

    for name in list(os.environ):
        if name.startswith("INNGEST_") or name in {
            "PORT",
            "METRICS_PORT",
            "HOST",
            "WEB_CONCURRENCY",
            "PROMETHEUS_MULTIPROC_DIR",
        }:
            monkeypatch.delenv(name)


def make_settings(tmp_path: Path, mode: str = "self-hosted", **overrides: Any) -> Settings:
    base: dict[str, Any] = {"inngest_mode": mode, "side_effects_db": tmp_path / "effects.sqlite3"}
    if mode != "dev":
        base |= {
            "inngest_signing_key": SIGNING_KEY,
            "inngest_event_key": EVENT_KEY,
            "inngest_serve_origin": "http://app:8000",
            "event_api_keys": EVENT_API_TOKEN,
        }
    if mode == "self-hosted":
        base["inngest_base_url"] = "http://127.0.0.1:1"  # nothing listens: no test talks to a real server here
    base["inngest_sync_on_startup"] = False
    return load_settings(**(base | overrides))


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    return lambda mode="self-hosted", **kw: make_settings(tmp_path, mode, **kw)


@pytest.fixture
def client_factory(settings_factory: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(mode: str = "self-hosted", **kw: Any) -> TestClient:
        settings = settings_factory(mode, **kw)
        upgrade(settings.database)  # what `python -m app` does for the SQLite default before serving
        client = TestClient(
            create_app(settings), raise_server_exceptions=False, headers={"Authorization": f"Bearer {EVENT_API_TOKEN}"}
        )
        client.__enter__()  # runs the lifespan: readiness, drain hooks
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def run_body(event_name: str, data: dict[str, Any], steps: dict[str, Any] | None = None, attempt: int = 0) -> bytes:
    """A function-run request body as the server sends it (see the contract doc, "Running a function"):
    canonical JSON (RFC 8785), the bytes the server signs."""
    event = {"name": event_name, "data": data, "id": "01TESTEVENT", "ts": 1_700_000_000_000}
    return canonical_json(
        {
            "event": event,
            "events": [event],
            "steps": steps or {},
            "use_api": False,
            "ctx": {
                "run_id": "01TESTRUN",
                "attempt": attempt,
                "disable_immediate_execution": False,
                "use_api": False,
                "stack": {"stack": list((steps or {}).keys()), "current": len(steps or {})},
            },
        }
    )


@pytest.fixture
def sdk_checks(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the SDK canonicalises a body and computes a request HMAC (`net._validate_sig`)."""
    calls: Counter[str] = Counter()

    def counter(name: str, original: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return original(*args, **kwargs)

        return counted

    canonicalize = counter("canonicalize", sdk.canonicalize)
    monkeypatch.setattr(transforms, "canonicalize", canonicalize)
    monkeypatch.setattr(sdk, "canonicalize", canonicalize)  # what `configure_client` installs, again
    monkeypatch.setattr(net, "_validate_sig", counter("_validate_sig", net._validate_sig))
    return calls


def signed(body: bytes, key: str = SIGNING_KEY) -> dict[str, str]:
    return {"X-Inngest-Signature": sign_request(body, key), "Content-Type": "application/json"}  # type: ignore[dict-item]


def fn_url(fn_id: str, step_id: str = "step", path: str = "/api/inngest") -> str:
    return f"{path}?fnId={APP_ID}-{fn_id}&stepId={step_id}"
