#!/usr/bin/env python3
"""End to end with the real images (needs Docker + registry access): `make e2e`.

up --wait -> the sync job must exit 0 -> send test/integration -> poll the server's REST API
(GET /v1/events/{id}/runs, Bearer signing key) until the run is Completed with output "Hello"
-> down -v. Uses its own project name so it never touches the volumes of `make up`; it does
use the same host ports, so stop the regular stack first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from send_event import dotenv, send  # noqa: E402

ENV_FILE = os.environ.get("ENV_FILE") or str(ROOT / ".env")
COMPOSE = [
    str(ROOT / "scripts" / "compose.sh"),
    "--env-file",
    ENV_FILE,
    "-p",
    "fastapi-inngest-e2e",
    "-f",
    str(ROOT / "docker-compose.yml"),
]
SERVER = os.environ.get("INNGEST_URL", "http://127.0.0.1:8288")
TIMEOUT = float(os.environ.get("E2E_TIMEOUT", "180"))


def compose(*args: str, check: bool = True) -> int:
    print("+ compose", " ".join(args), flush=True)
    return subprocess.run([*COMPOSE, *args], cwd=ROOT, check=check).returncode


def compose_output(*args: str) -> str:
    return subprocess.run([*COMPOSE, *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def env_value(name: str) -> str:
    value = dotenv(Path(ENV_FILE)).get(name)
    if not value:
        raise SystemExit(f"{name} missing from .env (run make up once)")
    return value


def output_of(run: dict) -> object:
    out = run.get("output")
    # The API returns the function's return value as raw JSON; accept a {"data": ...} wrapper too.
    return out.get("data") if isinstance(out, dict) and "data" in out else out


def wait_for_run(event_id: str, signing_key: str, server: str | None = None, timeout: float | None = None) -> dict:
    server, timeout = server or SERVER, timeout or TIMEOUT
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        req = urllib.request.Request(  # noqa: S310
            f"{server}/v1/events/{event_id}/runs", headers={"Authorization": f"Bearer {signing_key}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                runs = json.load(resp).get("data") or []
        except urllib.error.HTTPError as e:
            # A wrong key never starts working: the server answers a plain-text 401 "Authentication failed".
            if e.code == 401:
                raise SystemExit(
                    f"{server} refused the signing key: {e.read().decode(errors='replace').strip()}"
                ) from e
            runs, last = [], f"HTTP {e.code}"
        except OSError as e:  # not listening (yet), reset while restarting
            runs, last = [], str(e)
        for run in runs:
            last = run.get("status")
            if last == "Completed":
                return run
            if last in {"Failed", "Cancelled"}:
                raise SystemExit(f"run {run.get('run_id')} ended {last}: {run.get('output')}")
        time.sleep(2)
    raise SystemExit(f"no completed run for event {event_id} within {timeout:.0f}s (last: {last})")


def main() -> int:
    # make_env.py writes the key files there and compose mounts them from there (as `make e2e` exports it).
    os.environ.setdefault("SECRETS_DIR", f"{ENV_FILE}.secrets")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_env.py"), ENV_FILE], check=True)
    try:
        # Long-running services first (`up --wait` mistakes the one-shot sync for one), then the sync
        # job in the foreground: its exit code is the verdict.
        services = [s for s in compose_output("config", "--services").split() if s != "sync"]
        compose("up", "-d", "--build", "--wait", "--wait-timeout", "300", *services)
        if compose("run", "--rm", "--no-deps", "sync", check=False) != 0:
            raise SystemExit("sync job failed")
        (event_id,) = send("test/integration", {"message": "Hello"})
        run = wait_for_run(event_id, env_value("INNGEST_SIGNING_KEY"))
        if output_of(run) != "Hello":
            raise SystemExit(f"run completed with output {run.get('output')!r}, expected 'Hello'")
        print(f"e2e ok: event {event_id} -> run {run.get('run_id')} Completed, output 'Hello'")
        return 0
    finally:
        if os.environ.get("E2E_KEEP") != "1":
            compose("down", "-v", "--remove-orphans", check=False)


if __name__ == "__main__":
    sys.exit(main())
