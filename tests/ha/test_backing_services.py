"""The PostgreSQL and Redis process handles (tests/support) behave as the HA tests rely on: private
loopback ports, passwords enforced, committed data kept across a SIGKILL, removed afterwards."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.support.postgres import PostgresServer, postgres_bindir, postgres_server
from tests.support.redis import RedisServer, redis_server


def psql(dsn: str, sql: str) -> subprocess.CompletedProcess[str]:
    """psql as a client would run it: only the DSN, nothing from this environment."""
    binary = str(postgres_bindir() / "psql")
    return subprocess.run(
        [binary, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "5"},
    )


def test_postgres_users_databases_and_crash_recovery() -> None:
    with postgres_server() as pg:
        assert pg.port != 5432
        assert pg.dsn("shop", user="ledger", password="p@ss/word") == (
            f"postgresql://ledger:p%40ss%2Fword@127.0.0.1:{pg.port}/shop"
        )
        pg.create_user("ledger", "s3cret")
        pg.create_database("shop", owner="ledger")
        assert pg.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'") == "ledger"

        ok = psql(pg.dsn("shop", user="ledger", password="s3cret"), "CREATE TABLE t (v int); INSERT INTO t VALUES (7)")
        assert ok.returncode == 0, ok.stderr
        denied = psql(pg.dsn("shop", user="ledger", password="wrong"), "SELECT 1")
        assert denied.returncode != 0 and "password authentication failed" in denied.stderr
        nopass = psql(pg.dsn("shop", user="postgres", password=""), "SELECT 1")
        assert nopass.returncode != 0

        postmaster = pg.proc
        assert postmaster is not None
        pg.kill()
        assert postmaster.returncode == -9
        assert psql(pg.dsn(), "SELECT 1").returncode != 0
        pg.start()
        assert pg.execute("SELECT v FROM t", database="shop") == "7"
        assert "database system was interrupted" in pg.log_path.read_text() or "not properly shut down" in (
            pg.log_path.read_text()
        )

        pg.restart()
        assert pg.execute("SELECT count(*) FROM t", database="shop") == "1"
        data_dir = pg.data_dir
    assert not data_dir.exists()


def test_postgres_fixture_is_shared(postgres: PostgresServer) -> None:
    assert postgres.execute("SELECT current_setting('listen_addresses')") == "127.0.0.1"
    with pytest.raises(AssertionError, match="psql failed"):
        postgres.execute("SELECT * FROM no_such_table")


def test_redis_password_kill_and_url() -> None:
    with redis_server(password="pw/1") as redis:
        assert redis.url(3) == f"redis://:pw%2F1@127.0.0.1:{redis.port}/3"
        assert redis.command("SET", "k", "v") == "+OK"
        assert redis.command("GET", "k") == "$1"
        with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as sock:
            sock.sendall(b"GET k\r\n")
            assert sock.recv(1024).startswith(b"-NOAUTH")

        redis.kill()
        assert redis.proc is not None and redis.proc.returncode == -9
        redis.start()
        # No persistence: a restarted Redis is empty (state that must survive lives in PostgreSQL).
        assert redis.command("EXISTS", "k") == ":0"
        tmp = redis.log_path.parent
    assert not tmp.exists()


def test_redis_fixture(redis: RedisServer) -> None:
    assert redis.password and redis.command("PING") == "+PONG"
