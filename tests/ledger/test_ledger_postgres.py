"""Exactly once across replicas, restarts and a database crash, on Debian's PostgreSQL (tests/support/postgres).

Each test has its own database and user. Steps are signed and sent as the Inngest server sends them; the
proof is read from the database itself and from each process's `app_side_effects_total`.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Callable

import httpx
import psycopg
import pytest

from app.migrate import head
from app.sdk import signed_headers
from tests.ledger.conftest import (
    NoServer,
    new_database,
    reserve_body,
    send_steps,
    side_effects,
    statuses,
    step_op,
    step_path,
)
from tests.standin.fixtures import PYTHON, AppProcess
from tests.support import ROOT, free_port, wait_until
from tests.support.postgres import PostgresServer, postgres_bindir, postgres_server
from tests.support.process import clean_env

STEPS = 200


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]  # noqa: S608


def test_two_replicas_racing_on_200_steps_perform_each_exactly_once(
    postgres: PostgresServer, replica_factory: Callable[..., AppProcess]
) -> None:
    url = new_database(postgres)
    server = NoServer()
    a, b = replica_factory(server, url), replica_factory(server, url)
    runs = [f"run-{n:03d}" for n in range(STEPS)]
    # Every step goes to both replicas at the same moment: the server retrying on another pod, at worst timing.
    calls = [(app, run) for run in runs for app in (a, b)]
    answers = asyncio.run(send_steps(calls, server.signing_key))

    assert statuses(answers) == {206: 2 * STEPS}
    for first, second in zip(answers[::2], answers[1::2], strict=True):
        assert step_op(first)["op"] == step_op(second)["op"] == "StepRun", (first.text, second.text)
        assert step_op(first)["data"] == step_op(second)["data"]  # the replay returns the recorded result
    performed = side_effects(a, "performed") + side_effects(b, "performed")
    replayed = side_effects(a, "replayed") + side_effects(b, "replayed")
    assert (performed, replayed) == (STEPS, STEPS)
    assert side_effects(a, "performed") > 0 and side_effects(b, "performed") > 0  # both really raced
    assert rows(url, "reservations") == rows(url, "side_effects") == STEPS


def test_a_restarted_replica_replays_and_never_performs_again(
    postgres: PostgresServer, replica_factory: Callable[..., AppProcess]
) -> None:
    url = new_database(postgres)
    server = NoServer()
    a, b = replica_factory(server, url), replica_factory(server, url)
    runs = [f"run-{n:02d}" for n in range(50)]
    first = asyncio.run(send_steps([(a, run) for run in runs], server.signing_key))
    assert statuses(first) == {206: 50} and side_effects(a, "performed") == 50

    a.restart()  # a redeploy: a new process, its counters from zero, the same database
    again = asyncio.run(send_steps([(app, run) for run in runs for app in (a, b)], server.signing_key))

    assert statuses(again) == {206: 100}
    assert [step_op(r)["data"] for r in again[::2]] == [step_op(r)["data"] for r in first]
    assert (side_effects(a, "performed"), side_effects(a, "replayed")) == (0, 50)
    assert (side_effects(b, "performed"), side_effects(b, "replayed")) == (0, 50)
    assert rows(url, "reservations") == 50


def test_database_killed_mid_step_fails_retriably_and_leaves_nothing_half_written(
    replica_factory: Callable[..., AppProcess],
) -> None:
    # Its own server: the kill must not touch the session's shared one.
    with postgres_server() as pg:
        url = new_database(pg)
        server = NoServer()
        app = replica_factory(server, url)
        body = reserve_body("run-crash", sku="sku-crash")
        headers = signed_headers(server.signing_key, body) | {"Content-Type": "application/json"}

        # Hold the business table: the app's transaction claims the ledger row, then waits on its insert.
        blocker = psycopg.connect(pg.dsn(dbname(url)))
        blocker.execute("LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE")
        answer: list[httpx.Response] = []
        call = threading.Thread(
            target=lambda: answer.append(httpx.post(app.url + step_path(), content=body, headers=headers, timeout=60))
        )
        call.start()
        wait_until(
            lambda: pg.execute("SELECT count(*) FROM pg_locks WHERE NOT granted") != "0", 30, what="step mid-write"
        )
        pg.kill()  # the postmaster and every backend, mid-transaction
        call.join(60)
        blocker.close()

        (failed,) = answer
        # Retriable: the SDK reports the step's error for the server to retry, never "no retry".
        assert failed.headers.get("x-inngest-no-retry") != "true"
        assert failed.status_code == 500 or step_op(failed)["op"] == "StepError", failed.text
        assert side_effects(app, "performed") == 0

        pg.start()  # crash recovery: the uncommitted claim and insert are gone together
        assert rows(url, "side_effects") == rows(url, "reservations") == 0

        # The server's retry then performs it, once; the app's pool replaced its dead connections.
        retried = httpx.post(app.url + step_path(), content=body, headers=headers, timeout=60)
        assert step_op(retried)["op"] == "StepRun"
        assert rows(url, "side_effects") == rows(url, "reservations") == 1
        assert side_effects(app, "performed") == 1


def migrate(url: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(INNGEST_MODE="dev", DATABASE_URL=url)
    return subprocess.run(
        [PYTHON, "-m", "app", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_migrations_upgrade_an_empty_database_and_are_idempotent(postgres: PostgresServer) -> None:
    url = new_database(postgres, migrate=False)
    # Two at once, as two pods' init containers would: the advisory lock serialises them.
    racing = [
        subprocess.Popen(
            [PYTHON, "-m", "app", "migrate"],
            env=clean_env(INNGEST_MODE="dev", DATABASE_URL=url),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in racing]
    assert [proc.returncode for proc in racing] == [0, 0], outputs
    lines = sorted(out.strip() for out, _ in outputs)
    assert lines == [f"migrate: schema at {head()} (already up to date)", f"migrate: schema at {head()} (was empty)"]

    again = migrate(url)
    assert again.returncode == 0 and again.stdout.strip() == f"migrate: schema at {head()} (already up to date)"
    tables = postgres.execute(
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables "
        "WHERE table_schema = 'public'",
        database=dbname(url),
    )
    assert tables == "alembic_version,cancellations,payments,reservations,shipments,side_effects"


def test_migrate_against_an_unreachable_database_exits_1_with_the_reason() -> None:
    proc = migrate(f"postgresql://app:s3cret@127.0.0.1:{free_port()}/app")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("migrate: failed: OperationalError: ") and "Connection refused" in line
    assert "s3cret" not in proc.stderr


def test_the_app_role_owns_its_tables_without_superuser_rights(postgres: PostgresServer) -> None:
    url = new_database(postgres)
    # Migrations ran as the app's own user (no superuser), so it owns every table it created.
    owners = postgres.execute(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'", database=dbname(url)
    )
    assert owners == url.split("//", 1)[1].split(":", 1)[0]


def test_ha_app_database_script_is_idempotent_and_confines_each_user(
    replica_factory: Callable[..., AppProcess],
) -> None:
    """deploy/compose/postgres/app-db.sql as the ha one-shot runs it, twice, on a server that holds Inngest's."""
    script = ROOT / "deploy" / "compose" / "postgres" / "app-db.sql"
    with postgres_server() as pg:
        pg.create_user("inngest", "inngest-pw")
        pg.create_database("inngest", owner="inngest")
        for password in ("first-pw", "rotated-pw"):  # a second start, after APP_DB_PASSWORD changed in .env
            run = subprocess.run(
                [str(postgres_bindir() / "psql"), "-v", "ON_ERROR_STOP=1", "-v", f"pw={password}", "-f", str(script)],
                env={"PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGUSER": "postgres", "PGPASSWORD": pg.password},
                capture_output=True,
                text=True,
                check=False,
            )
            assert run.returncode == 0, run.stderr
        url = pg.dsn("app", user="app", password="rotated-pw")
        assert migrate(url).returncode == 0
        app = replica_factory(NoServer(), url)  # the app works as `app` on its own database
        assert app.readyz()["status_code"] == 200
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(pg.dsn("inngest", user="app", password="rotated-pw"))
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(pg.dsn("app", user="inngest", password="inngest-pw"))
