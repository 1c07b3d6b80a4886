"""One compose project on the private engine, driven through the Makefile's own targets.

`make up/send/sync/doctor/logs/down` run exactly as users run them; the only additions are the test
overrides in COMPOSE_EXTRA (compose.hostnet.yml, plus compose.hostnet.<mode>.yml where a mode needs
one), a private env file (ENV_FILE) and a project name of its own. Every listen port is a free
loopback port, so several test sessions share the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scripts import e2e
from tests.containers.engine import Engine, log, run_cmd
from tests.containers.images import APP_IMAGE
from tests.support import ROOT, free_port

HERE = Path(__file__).resolve().parent
COMPOSE_SH = ROOT / "scripts" / "compose.sh"
PORTS = (
    "app",
    "app_metrics",
    "inngest",
    "gateway",
    "gateway_grpc",
    "executor_grpc",
    "prometheus",
    "postgres",
    "redis",
    "db",
)


@dataclass
class Stack:
    engine: Engine
    project: str
    mode: str  # "" (the default stack), "dev" or "ha"
    env_file: Path
    values: dict[str, str]
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)
    extra: list[Path] = field(default_factory=list)  # further overrides a test adds (fault injection)

    @property
    def overrides(self) -> list[Path]:
        files = [HERE / "compose.hostnet.yml"]
        mode_file = HERE / f"compose.hostnet.{self.mode}.yml"
        if self.mode and mode_file.is_file():
            files.append(mode_file)
        return files + self.extra

    @property
    def signing_key(self) -> str:
        return self.values["INNGEST_SIGNING_KEY"]

    def make_cmd(self, *args: str) -> list[str]:
        """`make ARGS` with this project's env file, overrides and mode (the only differences from a user)."""
        cmd = ["make", "--no-print-directory", *args, f"ENV_FILE={self.env_file}", f"PYTHON={sys.executable}"]
        cmd += ["COMPOSE_EXTRA=" + " ".join(str(p) for p in self.overrides)]
        return [*cmd, f"MODE={self.mode}"] if self.mode else cmd

    def make(self, *args: str, check: bool = False, timeout: float = 400) -> subprocess.CompletedProcess[str]:
        return run_cmd(self.make_cmd(*args), env=self.env, check=check, timeout=timeout, cwd=ROOT)

    def compose(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        files = ["-f", str(ROOT / "docker-compose.yml")]
        if self.mode:
            files += ["-f", str(ROOT / "deploy" / "compose" / f"{self.mode}.yml")]
        for path in self.overrides:
            files += ["-f", str(path)]
        cmd = [str(COMPOSE_SH), "--env-file", str(self.env_file), *files, *args]
        return run_cmd(cmd, env=self.env, check=check, timeout=timeout, cwd=ROOT)

    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.compose("config", "--format", "json").stdout)
        return data

    def up(self) -> tuple[subprocess.CompletedProcess[str], float]:
        """`make up`, and the seconds from its start to its exit (the sync job's exit is its last step)."""
        started = time.monotonic()
        proc = self.make("up")
        took = time.monotonic() - started
        log(f"make up MODE={self.mode or '(default)'} ({self.project}): exit {proc.returncode} in {took:.1f} s")
        return proc, took

    def follow_logs(self, service: str, until: str, timeout: float = 30) -> str:
        """`make logs SERVICE=...` follows forever: read until `until` shows up, then stop it."""
        proc = subprocess.Popen(
            self.make_cmd("logs", f"SERVICE={service}"),
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if line:
                    seen.append(line)
                    if until in line:
                        break
                elif proc.poll() is not None:
                    break
                else:
                    time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # our own child's group: make and compose
            proc.wait(timeout=30)
        return "".join(seen)

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-a", "-q", service).stdout.split()
        assert len(ids) == 1, f"expected one {service} container, got {ids}"
        return ids[0]

    def services(self) -> dict[str, dict[str, Any]]:
        out = self.compose("ps", "-a", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        if len(rows) == 1 and isinstance(rows[0], list):  # older Compose printed one JSON array
            rows = rows[0]
        return {row["Service"]: row for row in rows}

    def events(self, since: float) -> list[dict[str, Any]]:
        """The project's container events since `since` (epoch seconds), oldest first."""
        out = self.engine.run(
            "events",
            # `--since` has one-second resolution: start from the previous second.
            "--since", f"{since - 1:.0f}",
            "--until", f"{time.time() + 1:.0f}",
            "--filter", "type=container",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--format", "{{json .}}",
            timeout=30,
        ).stdout  # fmt: skip
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def diagnostics(self) -> str:
        ps = self.compose("ps", "-a", check=False).stdout
        logs = self.compose("logs", "--no-color", "--tail", "40", check=False).stdout
        return f"--- compose ps ---\n{ps}\n--- compose logs ---\n{logs[-8000:]}"

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def remove(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False, timeout=120)


def _prometheus_config(dest: Path, ports: dict[str, int]) -> None:
    """deploy/compose/prometheus with 1 s scrape/evaluation intervals and the loopback ports of this run.
    Targets are static `name:port` (service names resolve through extra_hosts; Prometheus' DNS service
    discovery asks the DNS server and would not see them). Rule files are copied unchanged."""
    import yaml

    src = ROOT / "deploy" / "compose" / "prometheus"
    shutil.copytree(src, dest)
    dest.chmod(0o755)
    config = yaml.safe_load((src / "prometheus.yml").read_text())
    config.setdefault("global", {}).update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    known = {("app", 9000): ports["app_metrics"], ("inngest", 8288): ports["inngest"]}
    known[("localhost", 9090)] = known[("prometheus", 9090)] = ports["prometheus"]

    def rewrite(target: str) -> str:
        host, _, port = target.rpartition(":")
        if not port.isdigit():
            return target
        return f"{host}:{known.get((host, int(port)), port)}"

    for job in config.get("scrape_configs", []):
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
        for sd in job.pop("dns_sd_configs", []):
            names = [f"{name}:{sd.get('port', 80)}" for name in sd.get("names", [])]
            job.setdefault("static_configs", []).append({"targets": names})
        for static in job.get("static_configs", []):
            static["targets"] = [rewrite(t) for t in static.get("targets", [])]
    (dest / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def new_stack(engine: Engine, mode: str = "", **values: str) -> Stack:
    """A project with fresh keys and ports (nothing started). `values` override env file entries."""
    project = f"ct{mode}{secrets.token_hex(3)}"
    ports = {name: free_port() for name in PORTS}
    if mode == "ha":
        ports["db"] = ports["postgres"]  # ha.yml: the app's database lives on the shared server
    prom_dir = engine.root / f"prometheus-{project}"
    _prometheus_config(prom_dir, ports)
    env_values = {
        "INNGEST_SIGNING_KEY": secrets.token_hex(32),
        "INNGEST_EVENT_KEY": secrets.token_hex(16),
        "POSTGRES_PASSWORD": secrets.token_hex(12),
        "REDIS_PASSWORD": secrets.token_hex(12),
        "APP_DB_PASSWORD": secrets.token_hex(12),
        "EVENT_API_KEYS": secrets.token_hex(16),
        "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(8),  # profile not started; the file requires it
        "INNGEST_UI_PASSWORD": secrets.token_hex(8),  # likewise (profile ui-auth)
        "APP_IMAGE": APP_IMAGE,
        **{f"CT_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        "CT_PROMETHEUS_CONFIG_DIR": str(prom_dir),
        **values,
    }
    env_file = engine.root / f"{project}.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env_values.items()))
    # Only the engine's variables and these: nothing from the caller's shell (INNGEST_*, COMPOSE_*, MODE)
    # may change the rendered project. APP_PORT/INNGEST_URL point `make send` and e2e.py at this run.
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {k: v for k, v in engine.env.items() if k in keep or k.startswith("DOCKER_")}
    env.update(
        COMPOSE_PROJECT_NAME=project,
        # Where `make up` writes the key files compose mounts (mk/compose.mk's default for this ENV_FILE).
        SECRETS_DIR=f"{env_file}.secrets",
        APP_PORT=str(ports["app"]),
        INNGEST_URL=f"http://127.0.0.1:{ports['inngest']}",
    )
    return Stack(engine=engine, project=project, mode=mode, env_file=env_file, values=env_values, ports=ports, env=env)


def server_get(stack: Stack, path: str) -> Any:
    """GET the server's REST API (`Authorization: Bearer <signing key>`); the JSON answer."""
    answer = httpx.get(stack.url("inngest", path), headers={"Authorization": f"Bearer {stack.signing_key}"}, timeout=10)
    answer.raise_for_status()
    return answer.json()


def send_and_complete(stack: Stack, timeout: float = 60) -> tuple[dict[str, Any], Any]:
    """`make send`, then `make e2e`'s own REST polling (scripts/e2e.py) until the run Completed: run, output."""
    (event_id,) = stack.make("send", check=True).stdout.split()
    run: dict[str, Any] = e2e.wait_for_run(event_id, stack.signing_key, server=stack.url("inngest"), timeout=timeout)
    return run, e2e.output_of(run)


def hardening_problems(engine: Engine, container: str) -> list[str]:
    """What a running container lacks of the compose hardening (deploy/compose/hardening.yml), as the
    engine applied it: read-only root fs, no capabilities, no-new-privileges, memory and pids limits, /tmp."""
    host = engine.inspect(container)["HostConfig"]
    problems = []
    if host["ReadonlyRootfs"] is not True:
        problems.append("writable root fs")
    if host["CapDrop"] != ["ALL"] or host.get("CapAdd"):
        problems.append(f"capabilities: drop {host['CapDrop']}, add {host.get('CapAdd')}")
    if "no-new-privileges:true" not in (host.get("SecurityOpt") or []):
        problems.append("no no-new-privileges")
    if not host.get("Memory") or not host.get("PidsLimit"):
        problems.append(f"limits: memory {host.get('Memory')}, pids {host.get('PidsLimit')}")
    if "/tmp" not in (host.get("Tmpfs") or {}):
        problems.append(f"tmpfs {host.get('Tmpfs')}")
    return problems
