"""The opt-in login in front of the Inngest UI (COMPOSE_PROFILES=ui-auth): the compose service as rendered,
and its Caddyfile and start script run for real (Debian's caddy) in front of the real Inngest server."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.compose.compose_support import ROOT, TEST_ENV
from tests.support import free_port, require_tool, wait_until
from tests.support.inngest import InngestServer, inngest_server

UI_AUTH = ROOT / "deploy" / "compose" / "ui-auth"


def test_the_ui_login_is_opt_in_hardened_and_on_loopback(
    run_compose: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    default = json.loads(run_compose("base", "config", "--format", "json").stdout)
    assert "inngest-ui" not in default["services"]  # nothing extra without the profile
    proc = run_compose("base", "--profile", "ui-auth", "config", "--format", "json")
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    model = json.loads(proc.stdout)
    proxy = model["services"]["inngest-ui"]
    assert proxy["environment"]["INNGEST_UI_PASSWORD"] == TEST_ENV["INNGEST_UI_PASSWORD"]
    assert proxy["environment"]["INNGEST_UI_UPSTREAM"] == "inngest:8288"
    assert proxy["depends_on"]["inngest"]["condition"] == "service_healthy"
    assert [(p["host_ip"], p["published"], p["target"]) for p in proxy["ports"]] == [("127.0.0.1", "8443", 8443)]
    assert proxy["read_only"] is True and proxy["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in proxy["security_opt"]
    # The server's own port stays loopback-only: the login is the only way in from elsewhere.
    assert [p["host_ip"] for p in model["services"]["inngest"]["ports"]] == ["127.0.0.1"]


@pytest.fixture
def caddy_in_front(tmp_path: Path) -> Iterator[tuple[str, InngestServer, httpx.Client]]:
    require_tool("caddy", "apt-get install caddy")
    port = free_port()
    with inngest_server() as server, tempfile.TemporaryDirectory(prefix="caddy-") as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "XDG_DATA_HOME": f"{home}/data",
            "XDG_CONFIG_HOME": f"{home}/config",
            "CADDYFILE": str(UI_AUTH / "Caddyfile"),
            "UI_AUTH_PORT": str(port),
            "INNGEST_UI_UPSTREAM": f"127.0.0.1:{server.port}",
            "INNGEST_UI_PASSWORD": "correct horse",
        }
        log = open(tmp_path / "caddy.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(["/bin/sh", str(UI_AUTH / "start.sh")], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"https://localhost:{port}"
            # Trust exactly Caddy's local CA: the test proves the certificate chain too.
            root = Path(home) / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
            wait_until(root.exists, 30, what="caddy's local CA")
            with httpx.Client(verify=ssl.create_default_context(cafile=str(root)), timeout=5) as client:
                wait_until(lambda: client.get(url).status_code, 30, what="caddy to serve")
                yield url, server, client
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()


def test_the_ui_answers_only_with_the_password(caddy_in_front: tuple[str, InngestServer, httpx.Client]) -> None:
    url, server, client = caddy_in_front
    assert client.get(f"{url}/health").status_code == 401
    assert client.get(f"{url}/health", auth=("admin", "wrong")).status_code == 401
    good = client.get(f"{url}/health", auth=("admin", "correct horse"))
    assert good.status_code == 200 and good.json() == httpx.get(f"{server.url}/health").json()
    # Plain HTTP on the same port gets no UI.
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https://", "http://") + "/health", auth=("admin", "correct horse")).raise_for_status()


def test_no_password_no_proxy() -> None:
    require_tool("caddy", "apt-get install caddy")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CADDYFILE": str(UI_AUTH / "Caddyfile")}
    proc = subprocess.run(["/bin/sh", str(UI_AUTH / "start.sh")], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "INNGEST_UI_PASSWORD is empty" in proc.stderr
