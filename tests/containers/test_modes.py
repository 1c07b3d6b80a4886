"""`make up MODE=ha` (Postgres + Redis) and `make up MODE=dev` (`inngest dev`, the app with --reload)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.containers.stack import Stack, hardening_problems, send_and_complete, server_get
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("containers")]


def test_ha_runs_on_postgres_and_redis_and_survives_a_server_stop(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("ha")
    proc, took = stack.up()
    stack.engine.timings["make up MODE=ha"] = took
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}\n{stack.diagnostics()}"
    services = stack.services()
    for name in ("app", "inngest", "postgres", "redis", "prometheus"):
        assert services[name]["Health"] == "healthy", services[name]
        assert not hardening_problems(stack.engine, stack.container(name)), name
    for name, user in (("postgres", "postgres"), ("redis", "redis")):  # their own users, not root
        assert stack.engine.run("exec", stack.container(name), "id", "-un").stdout.strip() == user
    # The server really keeps its state there: no SQLite directory, Postgres and Redis URIs set.
    env = stack.engine.inspect(stack.container("inngest"))["Config"]["Env"]
    assert not any(e.startswith("INNGEST_SQLITE_DIR=") for e in env)
    assert any(e.startswith("INNGEST_POSTGRES_URI=postgres://inngest:") for e in env)
    first, output = send_and_complete(stack)
    assert output == "Hello", first

    # Stop the server container: the rest keeps running, the app stays ready and says why events fail.
    stack.engine.run("stop", "--time", "10", stack.container("inngest"), timeout=60)
    services = stack.services()
    assert services["inngest"]["State"] == "exited"
    for name in ("app", "postgres", "redis"):
        assert services[name]["Health"] == "healthy", services[name]
    assert httpx.get(stack.url("app", "/readyz")).status_code == 200
    token = {"Authorization": f"Bearer {stack.values['EVENT_API_KEYS']}"}
    refused = httpx.post(stack.url("app", "/api/events"), json={"name": "test/integration", "data": {}}, headers=token)
    assert refused.status_code == 503 and refused.headers.get("retry-after"), refused.text

    # Started again, it serves the earlier run from Postgres and runs a new one.
    stack.engine.run("start", stack.container("inngest"), timeout=60)
    wait_until(
        lambda: httpx.get(stack.url("inngest", "/health")).status_code == 200, 60, interval=0.5, what="server /health"
    )
    again = server_get(stack, f"/v1/runs/{first['run_id']}")["data"]
    assert (again["status"], again["output"]) == ("Completed", "Hello"), again
    second, output = send_and_complete(stack)
    assert output == "Hello" and second["run_id"] != first["run_id"]


def test_dev_mode_syncs_the_reloading_app_and_keeps_its_logs_json(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("dev")
    proc, took = stack.up()
    stack.engine.timings["make up MODE=dev"] = took
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}\n{stack.diagnostics()}"
    app = stack.engine.inspect(stack.container("app"))
    assert app["Config"]["Cmd"][-1] == "--reload", app["Config"]["Cmd"]
    inngest = stack.engine.inspect(stack.container("inngest"))
    assert inngest["Config"]["Cmd"][:2] == ["inngest", "dev"]
    run, output = send_and_complete(stack)
    assert output == "Hello", run
    logs = stack.engine.run("logs", stack.container("app"))
    lines = [line for line in (logs.stdout + logs.stderr).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, the reloader's included
    assert any("Started reloader process" in r["message"] for r in records), records[:5]
