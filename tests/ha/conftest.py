"""HA fixtures: two `inngest start` servers on one PostgreSQL database and one Redis, plus the app as a
process (the fixtures of tests/standin/fixtures.py, which take any server with url and keys)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.standin.fixtures import *  # noqa: F403
from tests.support.inngest import InngestServer
from tests.support.postgres import PostgresServer
from tests.support.process import closed_after
from tests.support.redis import redis_server


@pytest.fixture
def ha_servers(
    postgres: PostgresServer, request: pytest.FixtureRequest
) -> Iterator[tuple[InngestServer, InngestServer]]:
    """Servers A and B: same keys, same database, same Redis, as two replicas of one Deployment."""
    name = f"inngest_{secrets.token_hex(4)}"
    password = secrets.token_hex(16)
    postgres.create_user(name, password)
    postgres.create_database(name, owner=name)
    with redis_server(password=secrets.token_hex(16)) as redis:
        shared: dict[str, Any] = {
            "postgres_uri": postgres.dsn(name, user=name, password=password) + "?sslmode=disable",
            "redis_uri": redis.url(),
        }
        a = InngestServer(**shared)
        b = InngestServer(**shared, signing_key=a.signing_key, event_key=a.event_key)
        labels = {id(a): "inngest A", id(b): "inngest B"}

        def label(server: InngestServer) -> str:
            return labels[id(server)]

        with closed_after(request, label) as made:
            made += (a, b)
            # One after the other: each runs the database migrations at start.
            a.start()
            b.start()
            yield a, b
