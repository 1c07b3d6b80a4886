"""The real containers under a real (private) Docker engine: see conftest.py for the engine and images.

The stack is the real docker-compose.yml plus compose.hostnet.yml (host networking, local images, the
Inngest stand-in). The tests run in file order: the last two stop the app and take the stack down.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("containers")]


def http_json(url: str, body: Any = None, timeout: float = 5, token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {token}"} if token else {})
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def test_base_image_runs_python_and_trusts_the_hosts_index(engine, base_image):
    out = engine.run(
        "run", "--rm", "--network", "host", base_image,
        "python3", "-c", "import ssl, sys, venv; print(sys.version_info[:2])",
    ).stdout.split("\n")  # fmt: skip
    assert out[0] == "(3, 11)"
    # pip in a build step trusts what the host trusts and reaches the same index.
    engine.run(
        "run", "--rm", "--network", "host", base_image,
        "python3", "-m", "pip", "download", "--no-deps", "--dest", "/tmp/w", "--quiet", "idna==3.10",
        timeout=120,
    )  # fmt: skip


def test_make_up_returns_synced(stack):
    """`make up` returns 0 only after the sync job (run in the foreground) saw the server answer ok: true."""
    assert stack.up is not None
    assert stack.up.returncode == 0, f"make up failed:\n{stack.up.stderr[-3000:]}\n{stack.diagnostics()}"
    assert "sync ok" in stack.up.stdout and "stack up and synced" in stack.up.stdout, stack.up.stdout[-2000:]
    services = stack.services()
    for name in ("app", "inngest", "prometheus"):
        assert services[name]["State"] == "running", services[name]
        assert services[name]["Health"] == "healthy", services[name]
    assert "grafana" not in services  # profile-gated
    synced = http_json(f"http://127.0.0.1:{stack.ports['app']}/readyz")[1]["sync"]
    assert synced["status"] == "ok", synced


def _events(stack) -> list[dict[str, Any]]:
    out = stack.engine.run(
        "events",
        "--since", f"{stack.started_at:.0f}",
        "--until", f"{time.time() + 1:.0f}",
        "--filter", "type=container",
        "--filter", f"label=com.docker.compose.project={stack.project}",
        "--format", "{{json .}}",
        timeout=30,
    ).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_docker_events_prove_the_start_order(stack):
    first: dict[tuple[str, str], int] = {}
    sync_exit = None
    for ev in _events(stack):
        attrs = ev["Actor"]["Attributes"]
        service, action = attrs.get("com.docker.compose.service", ""), ev["Action"]
        first.setdefault((service, action), ev["timeNano"])
        if service == "sync" and action == "die":
            sync_exit = attrs.get("exitCode")
    healthy = "health_status: healthy"
    seen = sorted(first)
    for key in [("app", "start"), ("app", healthy), ("inngest", "start"), ("inngest", healthy), ("sync", "start")]:
        assert key in first, f"no {key} event; saw {seen}"
    # app healthy -> server container starts (depends_on: service_healthy)
    assert first[("app", healthy)] < first[("inngest", "start")]
    # sync starts only after both are healthy, and exits 0
    assert first[("sync", "start")] > max(first[("app", healthy)], first[("inngest", healthy)])
    assert ("sync", "die") in first and sync_exit == "0", f"sync exit code {sync_exit}"
    assert first[("sync", "die")] > first[("inngest", healthy)]


def test_app_runs_as_non_root_on_a_read_only_root_fs(stack, engine, images):
    image = engine.run("image", "inspect", images.app).stdout
    assert json.loads(image)[0]["Config"]["User"] == "10001:10001"
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


def test_integration_event_runs_to_completion_in_the_standin(stack):
    status, body = http_json(
        stack.url("app", "/api/events"),
        {"name": "test/integration", "data": {"message": "Hello from compose"}},
        token=stack.event_api_token,
    )
    assert status == 200, body
    (event_id,) = body["ids"]

    def completed() -> list[dict[str, Any]]:
        _, runs = http_json(stack.url("inngest", f"/test/runs?event_id={urllib.parse.quote(event_id)}"))
        return [r for r in runs if r["status"] != "Running"]

    (run,) = wait_until(completed, 30, 0.5, "the test/integration run to finish")
    assert run["status"] == "Completed", run
    assert run["output"] == "Hello from compose"
    assert run["function_id"].endswith("-test-integration")


def _prom(stack, query: str) -> list[dict[str, Any]]:
    status, body = http_json(stack.url("prometheus", "/api/v1/query?" + urllib.parse.urlencode({"query": query})))
    assert status == 200 and body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_stopping_the_app_turns_up_to_zero_and_app_down_pending(stack, engine):
    def up_is(value: str) -> bool:
        return any(s["value"][1] == value for s in _prom(stack, 'up{job="app"}'))

    wait_until(lambda: up_is("1"), 30, 0.5, "Prometheus to scrape the app")
    _, rules = http_json(stack.url("prometheus", "/api/v1/rules"))
    loaded = {r["name"]: r for g in rules["data"]["groups"] for r in g["rules"]}
    assert "AppDown" in loaded, sorted(loaded)
    assert all(r["health"] != "err" for r in loaded.values()), loaded

    engine.run("stop", "--time", "30", stack.container("app"), timeout=60)
    wait_until(lambda: up_is("0"), 30, 0.5, "up{job=app} == 0")
    pending = wait_until(
        lambda: _prom(stack, 'ALERTS{alertname="AppDown",alertstate="pending"}'),
        30,
        0.5,
        "AppDown pending",
    )
    assert pending[0]["metric"]["job"] == "app"


def test_down_v_leaves_nothing(stack, engine):
    stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=120)
    label = f"label=com.docker.compose.project={stack.project}"
    assert engine.run("ps", "-a", "-q", "--filter", label).stdout.split() == []
    assert engine.run("volume", "ls", "-q", "--filter", label).stdout.split() == []
    assert engine.run("network", "ls", "-q", "--filter", label).stdout.split() == []
    # Nothing else either: no anonymous volume, no stray container on this engine.
    assert engine.run("ps", "-a", "-q").stdout.split() == []
    assert engine.run("volume", "ls", "-q").stdout.split() == []
