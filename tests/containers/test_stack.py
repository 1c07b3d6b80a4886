"""The default stack (`make up`) with the real server image under a real (private) Docker engine.

One project for the module, driven only through the Makefile's targets; the tests run in file order and
the last ones take it down, up again and down with its volumes.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.containers.engine import Engine, log
from tests.containers.stack import Stack, hardening_problems, new_stack, send_and_complete, server_get
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("containers")]

HEALTHY = "health_status: healthy"


@pytest.fixture(scope="module")
def stack(engine: Engine, images: set[str]) -> Iterator[Stack]:
    st = new_stack(engine)
    try:
        yield st
    finally:
        st.remove()


@pytest.fixture(scope="module")
def up(stack: Stack) -> dict[str, Any]:
    started_at = time.time()
    proc, took = stack.up()
    stack.engine.timings["make up to synced"] = took
    return {"proc": proc, "took": took, "since": started_at}


def first_events(stack: Stack, since: float) -> tuple[dict[tuple[str, str], int], dict[str, str]]:
    """First time of each (service, action), and the exit code of each service's first `die`."""
    first: dict[tuple[str, str], int] = {}
    exits: dict[str, str] = {}
    for ev in stack.events(since):
        attrs = ev["Actor"]["Attributes"]
        service, action = attrs.get("com.docker.compose.service", ""), ev["Action"]
        first.setdefault((service, action), ev["timeNano"])
        if action == "die":
            exits.setdefault(service, attrs.get("exitCode", ""))
    return first, exits


def identity(function: dict[str, Any]) -> tuple[str, str, str]:
    """What a function record keeps unless it is created anew: internal id, slug, creation time."""
    return function["internal_id"], function["id"], function["created_at"]


def test_make_up_returns_synced(stack: Stack, up: dict[str, Any]) -> None:
    proc = up["proc"]
    assert proc.returncode == 0, f"make up failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}\n{stack.diagnostics()}"
    assert "sync ok" in proc.stdout and "stack up and synced" in proc.stdout, proc.stdout[-2000:]
    services = stack.services()
    for name in ("db", "app", "inngest", "prometheus"):
        assert services[name]["State"] == "running", services[name]
        assert services[name]["Health"] == "healthy", services[name]
    assert "grafana" not in services  # profile-gated
    # The server itself lists the app's functions: the registration really happened there.
    functions = server_get(stack, "/v1/apps/fastapi-app/functions")
    assert "fastapi-app-test-integration" in {f["id"] for f in functions}, functions


def test_docker_events_prove_the_start_order(stack: Stack, up: dict[str, Any]) -> None:
    first, exits = first_events(stack, up["since"])
    seen = sorted(first)
    for key in [("app", "start"), ("app", HEALTHY), ("inngest", "start"), ("inngest", HEALTHY), ("sync", "start")]:
        assert key in first, f"no {key} event; saw {seen}"
    # db healthy -> migrate exits 0 -> app starts (service_completed_successfully)
    assert first[("db", HEALTHY)] < first[("migrate", "start")] < first[("migrate", "die")] < first[("app", "start")]
    assert exits["migrate"] == "0", f"migrate exit code {exits.get('migrate')}"
    # app healthy -> server container starts (depends_on: service_healthy) -> server healthy -> sync
    assert first[("app", HEALTHY)] < first[("inngest", "start")] < first[("inngest", HEALTHY)]
    assert first[("sync", "start")] > max(first[("app", HEALTHY)], first[("inngest", HEALTHY)])
    assert ("sync", "die") in first and exits["sync"] == "0", f"sync exit code {exits.get('sync')}"
    # Where `make up`'s time went (reported, not asserted): seconds after the first container was created.
    t0 = min(first.values())
    steps = [
        ("db", HEALTHY),
        ("migrate", "die"),
        ("app", HEALTHY),
        ("inngest", "start"),
        ("inngest", HEALTHY),
        ("sync", "start"),
        ("sync", "die"),
    ]
    log("start order: " + ", ".join(f"{s} {a.split(': ')[-1]} +{(first[(s, a)] - t0) / 1e9:.1f} s" for s, a in steps))
    # The healthy event comes from the engine running the compose file's own probe in the real image.
    info = stack.engine.inspect(stack.container("inngest"))
    assert info["Config"]["Healthcheck"]["Test"] == ["CMD", "inngest", "alpha", "doctor", "healthcheck"]


def test_send_then_the_run_completes_through_e2e_polling(stack: Stack, up: dict[str, Any]) -> None:
    run, output = send_and_complete(stack)
    assert run["status"] == "Completed"
    assert output == "Hello", run
    stack.values["CT_FIRST_RUN_ID"] = run["run_id"]


def test_doctor_passes_every_check(stack: Stack, up: dict[str, Any]) -> None:
    proc = stack.make("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("ok ", "FAIL"))]
    assert lines and all(line.startswith("ok ") for line in lines), proc.stdout


def test_sync_twice_is_idempotent(stack: Stack, up: dict[str, Any]) -> None:
    before = server_get(stack, "/v1/apps/fastapi-app/functions")
    outputs = []
    for _ in range(2):
        proc = stack.make("sync")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout)
    # Nothing changed since `make up` synced: the server answers ok without modifying anything.
    assert all("sync ok" in out and "(changed)" not in out for out in outputs), outputs
    after = server_get(stack, "/v1/apps/fastapi-app/functions")
    assert sorted(map(identity, after)) == sorted(map(identity, before))


def test_logs_follow_the_app_in_json(stack: Stack, up: dict[str, Any]) -> None:
    out = stack.follow_logs("app", until="/readyz")
    lines = [line.split("|", 1)[1].strip() for line in out.splitlines() if "|" in line and line.startswith("app")]
    assert lines, out
    records = [json.loads(line) for line in lines]
    assert all("level" in r or "levelname" in r for r in records), records[:3]


def test_app_runs_as_non_root_on_a_read_only_root_fs(stack: Stack, up: dict[str, Any]) -> None:
    engine = stack.engine
    image = engine.inspect(stack.values["APP_IMAGE"])
    assert image["Config"]["User"] == "10001:10001"
    # `make up` ran the sync job with --rm: start one more, detached, to inspect it like the app.
    sync = stack.compose("run", "-d", "--no-deps", "sync", "python", "-c", "import time; time.sleep(30)").stdout
    sync_id = sync.strip().splitlines()[-1]
    try:
        for service, cid in (("app", stack.container("app")), ("sync", sync_id)):
            info = engine.inspect(cid)
            assert info["HostConfig"]["ReadonlyRootfs"] is True, service
            assert info["Config"]["User"] not in ("", "0", "root", "0:0"), service
            assert info["HostConfig"]["CapDrop"] == ["ALL"], service
            assert info["HostConfig"]["SecurityOpt"] == ["no-new-privileges:true"], service
    finally:
        engine.run("rm", "-f", sync_id, check=False)
    app = stack.container("app")
    assert engine.run("exec", app, "id", "-u").stdout.strip() == "10001"
    probe = (
        "import errno, sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path, 'w').close(); print(path, 'ok')\n"
        "    except OSError as e:\n"
        "        print(path, errno.errorcode[e.errno])\n"
    )
    out = engine.run("exec", app, "python", "-c", probe, "/opt/venv/probe", "/probe", "/tmp/probe").stdout
    assert out.split("\n")[:3] == ["/opt/venv/probe EROFS", "/probe EROFS", "/tmp/probe ok"], out


def test_every_container_runs_hardened(stack: Stack, up: dict[str, Any]) -> None:
    """db, the server and Prometheus too, not only the app: each one came up under the compose hardening,
    PostgreSQL as its own user (no capability for its entrypoint to chown or switch users with)."""
    running = {name: stack.container(name) for name, row in stack.services().items() if row["State"] == "running"}
    assert {"app", "db", "inngest", "prometheus"} <= set(running), running
    problems = {name: p for name, cid in running.items() if (p := hardening_problems(stack.engine, cid))}
    assert not problems, problems
    assert stack.engine.run("exec", running["db"], "id", "-un").stdout.strip() == "postgres"


def test_keys_reach_the_containers_as_files_only(stack: Stack, up: dict[str, Any]) -> None:
    keys = [stack.values[n] for n in ("INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY", "EVENT_API_KEYS")]
    engine = stack.engine
    app, server = stack.container("app"), stack.container("inngest")
    for cid in (app, server):
        env = engine.inspect(cid)["Config"]["Env"]
        assert not [e for e in env if any(k in e for k in keys)], env
    read = "import sys; print(open(sys.argv[1]).read())"
    on_disk = engine.run("exec", app, "python", "-c", read, "/run/secrets/inngest-signing-key").stdout.strip()
    assert on_disk == stack.signing_key
    server_env = engine.inspect(server)["Config"]["Env"]
    assert "INNGEST_CONFIG=/run/secrets/inngest-server.json" in server_env
    # The server authenticates its REST API with the key it read from that file.
    assert server_get(stack, "/v1/apps/fastapi-app/functions")


def _prom(stack: Stack, query: str) -> list[dict[str, Any]]:
    answer = httpx.get(stack.url("prometheus", "/api/v1/query?" + urllib.parse.urlencode({"query": query})))
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_stopping_the_app_turns_up_to_zero_and_app_down_pending(stack: Stack, up: dict[str, Any]) -> None:
    def up_is(value: str) -> bool:
        return any(s["value"][1] == value for s in _prom(stack, 'up{job="app"}'))

    wait_until(lambda: up_is("1"), 30, interval=0.5, what="Prometheus to scrape the app")
    rules = httpx.get(stack.url("prometheus", "/api/v1/rules")).json()
    loaded = {r["name"]: r for g in rules["data"]["groups"] for r in g["rules"]}
    assert "AppDown" in loaded, sorted(loaded)
    assert all(r["health"] != "err" for r in loaded.values()), loaded

    stack.engine.run("stop", "--time", "30", stack.container("app"), timeout=60)
    wait_until(lambda: up_is("0"), 30, interval=0.5, what="up{job=app} == 0")
    pending = wait_until(
        lambda: _prom(stack, 'ALERTS{alertname="AppDown",alertstate="pending"}'), 30, interval=0.5, what="AppDown"
    )
    assert pending[0]["metric"]["job"] == "app"


def test_down_then_up_keeps_the_app_and_its_runs(stack: Stack, up: dict[str, Any]) -> None:
    run_id = stack.values["CT_FIRST_RUN_ID"]
    functions = sorted(map(identity, server_get(stack, "/v1/apps/fastapi-app/functions")))
    down = stack.make("down")
    assert down.returncode == 0, down.stderr
    assert stack.services() == {}
    again, took = stack.up()
    assert again.returncode == 0, f"{again.stdout[-2000:]}\n{again.stderr[-3000:]}\n{stack.diagnostics()}"
    stack.engine.timings["make up again"] = took
    # The SQLite volume kept the run (with its output) and the app's functions, records unchanged.
    run = server_get(stack, f"/v1/runs/{run_id}")["data"]
    assert (run["status"], run["output"]) == ("Completed", "Hello"), run
    assert sorted(map(identity, server_get(stack, "/v1/apps/fastapi-app/functions"))) == functions


def test_down_volumes_leaves_nothing(stack: Stack, up: dict[str, Any]) -> None:
    proc = stack.make("down", "VOLUMES=1")
    assert proc.returncode == 0, proc.stderr
    engine = stack.engine
    label = f"label=com.docker.compose.project={stack.project}"
    assert engine.run("ps", "-a", "-q", "--filter", label).stdout.split() == []
    assert engine.run("volume", "ls", "-q", "--filter", label).stdout.split() == []
    assert engine.run("network", "ls", "-q", "--filter", label).stdout.split() == []
    # Nothing else either: no anonymous volume, no stray container on this engine.
    assert engine.run("ps", "-a", "-q").stdout.split() == []
    assert engine.run("volume", "ls", "-q").stdout.split() == []
