"""Fixtures for the suites that run against the real Inngest server (`inngest start`, SQLite in a temp dir).

The app runs as a real process (`AppProcess` from tests/standin/fixtures.py takes any server with
url/signing_key/event_key); results are read from the server's REST and GraphQL APIs only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.standin.fixtures import AppProcess, app_factory, e2e_log_dir
from tests.support.inngest import InngestServer
from tests.support.process import closed_after

__all__ = ["app_factory", "e2e_log_dir"]

APP_FNS = {
    "fastapi-app-test-integration",
    "fastapi-app-process-order",
    "fastapi-app-reserve-item",
    "fastapi-app-nightly-cleanup",
}
# Failed steps are retried after 1 s instead of the server's exponential backoff (15 s and more).
FAST_RETRIES = ("--retry-interval", "1")


def ledger(app: AppProcess) -> dict[str, int]:
    """Side effects the app performed, by kind (its idempotency ledger, SQLite by default)."""
    with sqlite3.connect(app.side_effects_db) as db:
        return dict(db.execute("SELECT kind, count(*) FROM side_effects GROUP BY kind").fetchall())


@pytest.fixture
def server_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., InngestServer]]:
    """`server_factory(start=True, **InngestServer options)`; a failing test prints each server's log."""
    with closed_after(request, lambda server: f"inngest {server.url}") as made:

        def make(start: bool = True, **options: Any) -> InngestServer:
            options.setdefault("extra_args", FAST_RETRIES)
            server = InngestServer(**options)
            made.append(server)
            return server.start() if start else server

        yield make


@pytest.fixture
def server(server_factory: Callable[..., InngestServer]) -> InngestServer:
    """A running `inngest start` without `--sdk-url` (the app syncs itself)."""
    return server_factory()


@pytest.fixture
def real_stack(server: InngestServer, app_factory: Callable[..., AppProcess]) -> tuple[InngestServer, AppProcess]:
    """Server first, then the app, which syncs itself: the compose order."""
    app = app_factory(server)
    server.wait_functions(APP_FNS)
    return server, app
