"""The ledger on a real PostgreSQL: app processes sharing one database, steps signed as the server signs them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.migrate import upgrade
from app.sdk import signed_headers
from tests.standin.fixtures import AppProcess, metric_value
from tests.standin.protocol import canonical_json
from tests.support.postgres import PostgresServer
from tests.support.process import closed_after

APP_ID = "fastapi-app"


@dataclass
class NoServer:
    """What AppProcess needs from an Inngest server. These tests call the app as the server would, so none runs."""

    url: str = "http://127.0.0.1:9"  # discard port: nothing answers, and the app never needs it here
    signing_key: str = field(default_factory=lambda: secrets.token_hex(32))
    event_key: str = field(default_factory=lambda: secrets.token_hex(16))


def new_database(server: PostgresServer, migrate: bool = True) -> str:
    """A fresh database owned by its own user (as the app runs in production); returns its URL."""
    name = f"ledger_{secrets.token_hex(4)}"
    password = secrets.token_hex(16)
    server.create_user(name, password)
    server.create_database(name, owner=name)
    url = server.dsn(name, user=name, password=password)
    if migrate:
        upgrade(url)
    return url


def reserve_body(run_id: str, sku: str) -> bytes:
    """The server's first call of a `reserve-item` run (stepId=step: the SDK runs the `reserve` step)."""
    event: dict[str, Any] = {
        "name": "shop/order.item.reserve",
        "data": {"order_id": f"o-{run_id}", "sku": sku, "qty": 1},
    }
    event |= {"id": f"evt-{run_id}", "ts": 1_700_000_000_000}
    ctx = {"run_id": run_id, "attempt": 0, "disable_immediate_execution": False, "use_api": False}
    ctx |= {"stack": {"stack": [], "current": 0}}
    return canonical_json({"event": event, "events": [event], "steps": {}, "use_api": False, "ctx": ctx})


def step_path() -> str:
    return f"/api/inngest?fnId={APP_ID}-reserve-item&stepId=step"


async def send_steps(calls: list[tuple[AppProcess, str]], signing_key: str, limit: int = 64) -> list[httpx.Response]:
    """POST every (app, run id) `reserve` step at once (at most `limit` in flight); answers in call order."""
    gate = asyncio.Semaphore(limit)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=limit)) as http:

        async def one(app: AppProcess, run_id: str) -> httpx.Response:
            body = reserve_body(run_id, sku=f"sku-{run_id}")
            headers = signed_headers(signing_key, body) | {"Content-Type": "application/json"}
            async with gate:
                return await http.post(app.url + step_path(), content=body, headers=headers)

        return list(await asyncio.gather(*(one(app, run_id) for app, run_id in calls)))


def side_effects(app: AppProcess, outcome: str) -> float:
    return metric_value(app.metrics(), "app_side_effects_total", kind="item.reserved", outcome=outcome)


@pytest.fixture
def replica_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., AppProcess]]:
    """Start app processes (`replica_factory(server, database_url)`); failing tests print their logs."""
    with closed_after(request, lambda app: app.log_path.name) as made:

        def make(server: NoServer, database_url: str, **env: str) -> AppProcess:
            app = AppProcess(tmp_path, server, DATABASE_URL=database_url, INNGEST_SYNC_ON_STARTUP="false", **env)  # type: ignore[arg-type]
            made.append(app)
            return app.start()

        yield make


def statuses(answers: list[httpx.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for answer in answers:
        counts[answer.status_code] = counts.get(answer.status_code, 0) + 1
    return counts


def step_op(answer: httpx.Response) -> dict[str, Any]:
    (op,) = answer.json()
    return dict(op)
