"""Every compose service of every mode and profile is hardened, as Compose renders it: read-only root fs,
sized tmpfs mounts, no capabilities beyond an allowed few, no-new-privileges, memory and pids limits. The
hardening has one definition (deploy/compose/hardening.yml) that every service extends."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.compose.compose_support import MODES, ROOT, load_yaml

# Profiles that add services; cloud has no server, so no login in front of one (ui-auth).
ALL_PROFILES = ("monitoring", "tracing", "ui-auth")
PROFILES = {"base": ALL_PROFILES, "dev": ALL_PROFILES, "ha": ALL_PROFILES, "cloud": ("monitoring", "tracing")}
# Capabilities a service may add back, each for a reason given next to it in docker-compose.yml.
ALLOWED_CAPS = {"inngest-ui": {"NET_BIND_SERVICE"}}
# Images that start as root and drop privileges in their entrypoint run as their own user from the start.
NON_ROOT_USER = {"db": "postgres", "postgres": "postgres", "app-db-init": "postgres", "redis": "redis"}
# Set in deploy/compose/hardening.yml only (limits and tmpfs sizes are per service).
SINGLE_DEFINITION = ("read_only", "cap_drop", "security_opt")


@pytest.fixture(scope="module")
def models(run_compose: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, dict[str, Any]]:
    """`config --format json` of every mode with every profile it supports."""
    out = {}
    for mode in MODES:
        profiles = [arg for p in PROFILES[mode] for arg in ("--profile", p)]
        proc = run_compose(mode, *profiles, "config", "--format", "json")
        assert proc.returncode == 0, proc.stderr
        out[mode] = json.loads(proc.stdout)
    return out


def _problems(name: str, svc: dict[str, Any]) -> list[str]:
    problems = []
    if svc.get("read_only") is not True:
        problems.append("root fs not read-only")
    if svc.get("cap_drop") != ["ALL"]:
        problems.append(f"cap_drop {svc.get('cap_drop')}")
    if extra := set(svc.get("cap_add", [])) - ALLOWED_CAPS.get(name, set()):
        problems.append(f"cap_add {sorted(extra)}")
    if "no-new-privileges:true" not in svc.get("security_opt", []):
        problems.append("no no-new-privileges")
    if int(svc.get("mem_limit", 0)) <= 0:
        problems.append("no memory limit")
    if int(svc.get("pids_limit", 0)) <= 0:
        problems.append("no pids limit")
    mounts = svc.get("tmpfs", [])
    if "/tmp" not in {m.split(":", 1)[0] for m in mounts}:
        problems.append("no /tmp tmpfs")
    problems += [f"tmpfs {m} without size" for m in mounts if "size=" not in m.partition(":")[2]]
    if svc.get("privileged"):
        problems.append("privileged")
    if name in NON_ROOT_USER and svc.get("user") != NON_ROOT_USER[name]:
        problems.append(f"user {svc.get('user')!r}, not {NON_ROOT_USER[name]!r}")
    return problems


@pytest.mark.parametrize("mode", MODES)
def test_every_service_is_hardened(models: dict[str, dict[str, Any]], mode: str) -> None:
    services = models[mode]["services"]
    assert {"inngest-ui", "grafana", "jaeger"} & set(services), "the profiles' services are rendered too"
    found = {name: problems for name, svc in services.items() if (problems := _problems(name, svc))}
    assert not found, found


@pytest.mark.parametrize("mode", MODES)
def test_memory_limits_fit_what_the_services_hold(models: dict[str, dict[str, Any]], mode: str) -> None:
    services = models[mode]["services"]
    mib = {name: int(svc["mem_limit"]) >> 20 for name, svc in services.items()}
    assert mib["app"] == 512  # the Kubernetes container limit
    if "inngest" in mib:
        assert mib["inngest"] >= 1024
    assert mib.get("postgres", 1024) >= 1024  # ha: the server's history and the app's ledger


def test_the_hardening_is_defined_once_and_every_service_extends_it() -> None:
    """No compose file repeats a hardening key, and every service it adds extends `hardened` (directly, or
    through the service it extends): a new service cannot start with the engine's defaults."""
    hardening = ROOT / "deploy" / "compose" / "hardening.yml"
    files = [ROOT / "docker-compose.yml", *sorted((ROOT / "deploy" / "compose").glob("*.yml"))]
    files.remove(hardening)
    defined: dict[str, Any] = load_yaml(files[0])["services"]
    for path in files:
        for name, svc in (load_yaml(path).get("services") or {}).items():
            if svc is None:  # `!reset null`: removed
                continue
            repeated = [key for key in SINGLE_DEFINITION if key in svc]
            assert not repeated, f"{path.name}: {name} sets {repeated} itself"
            if path == files[0] or name not in defined:  # a service this file adds
                assert svc.get("extends"), f"{path.name}: {name} does not extend the hardening"
                defined.setdefault(name, svc)
    hardened = yaml.safe_load(hardening.read_text())["services"]["hardened"]
    assert set(SINGLE_DEFINITION) <= set(hardened)
