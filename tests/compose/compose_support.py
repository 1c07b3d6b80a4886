"""Shared constants and helpers of the compose tests (a unique module name, unlike conftest)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT, require_tool

__all__ = ["ROOT", "require_tool"]

MODES = ("base", "dev", "ha", "cloud")

# Sentinel secrets: every one must reach the rendered model only through ${VAR} interpolation.
TEST_ENV = {
    "INNGEST_SIGNING_KEY": "5e1f00000000000000000000000000000000000000000000000000000000000a",
    "INNGEST_EVENT_KEY": "5e2f0000000000000000000000000000000000000000000000000000000000eb",
    "APP_DB_PASSWORD": "5e8f0000000000000000000000000000",
    "EVENT_API_KEYS": "5e9f0000000000000000000000000000",
    "POSTGRES_PASSWORD": "5e3f0000000000000000000000000000",
    "REDIS_PASSWORD": "5e4f0000000000000000000000000000",
    "GRAFANA_ADMIN_PASSWORD": "5e5f0000000000000000000000000000",
    "INNGEST_UI_PASSWORD": "5eaf0000000000000000000000000000",
    "INNGEST_CLOUD_SIGNING_KEY": "signkey-prod-5e6f000000000000000000000000000000000000000000000000000000000000",
    "INNGEST_CLOUD_EVENT_KEY": "5e7f000000000000000000000000000000000000000000000000000000000c1d",
    "INNGEST_CLOUD_SERVE_ORIGIN": "https://app.example.com",
}


def compose_files(mode: str) -> list[str]:
    files = ["-f", str(ROOT / "docker-compose.yml")]
    if mode != "base":
        files += ["-f", str(ROOT / "deploy" / "compose" / f"{mode}.yml")]
    return files


def container_env(model: dict[str, Any], service: str) -> dict[str, str]:
    """A service's environment as its process sees it, each `/run/secrets/<target>` value (`*_FILE`,
    INNGEST_CONFIG) pointing at the host file compose mounts there (the model's top-level `secrets:`)."""
    svc = model["services"][service]
    # A relative target (or none) is a name under /run/secrets.
    targets = {s["source"]: str(Path("/run/secrets", s.get("target") or s["source"])) for s in svc.get("secrets", [])}
    mounted = {target: model["secrets"][source]["file"] for source, target in targets.items()}
    env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
    return {k: mounted.get(v, v) for k, v in env.items()}


def clean_env() -> dict[str, str]:
    """No stray INNGEST_*/COMPOSE_* from the caller's shell may influence the rendering."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}


def unwrap_compose(path: str) -> str:
    """The pip package's `docker-compose` is a Python shim that always exits 0: use the Go binary."""
    text = Path(path).read_bytes()[:4096]
    if b"from compose import" not in text:
        return path
    python = text.splitlines()[0][2:].decode().strip()
    code = "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


class _Loader(yaml.SafeLoader):
    """Reads compose files with their `!reset` / `!override` tags (value kept as is)."""


def _keep(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    assert isinstance(node, yaml.ScalarNode)
    value = loader.construct_scalar(node)
    return None if value in ("", "null", "~") else value


_Loader.add_multi_constructor("!", _keep)


def load_yaml(path: Path) -> Any:
    """A compose file as written (before Compose merges anything)."""
    return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
