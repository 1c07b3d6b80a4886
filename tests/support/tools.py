"""External tools: required in CI (REQUIRE_ALL=1), optional elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


def unavailable(message: str) -> NoReturn:
    """Skip the test saying what is missing; under REQUIRE_ALL=1 that is a failure instead."""
    if os.environ.get("REQUIRE_ALL") == "1":
        pytest.fail(f"REQUIRE_ALL=1 and {message}", pytrace=False)
    pytest.skip(message)


def require_tool(name: str, hint: str) -> str:
    """Return the path of `name` (PATH, then the venv), or call `unavailable` saying how to install it."""
    path = shutil.which(name) or shutil.which(name, path=str(VENV_BIN))
    if path:
        return path
    unavailable(f"{name} not found: {hint}")


def built_binary(script: str) -> str:
    """The path a `scripts/<script>` provisioner prints (it builds and caches the binary), or `unavailable`
    with the one line it printed saying what to install."""
    proc = subprocess.run(
        [os.environ.get("PYTHON", "python3"), str(ROOT / "scripts" / script)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        unavailable(proc.stderr.strip() or f"scripts/{script} failed")
    return proc.stdout.strip()
