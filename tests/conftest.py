"""Shared fixtures. External tools are required in CI (REQUIRE_ALL=1) and optional elsewhere."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


def require_tool(name: str, hint: str) -> str:
    """Return the path of `name`, or skip (fail under REQUIRE_ALL=1) saying how to install it."""
    path = shutil.which(name) or shutil.which(name, path=str(VENV_BIN))
    if path:
        return path
    message = f"{name} not found: {hint}"
    if os.environ.get("REQUIRE_ALL") == "1":
        pytest.fail(f"REQUIRE_ALL=1 and {message}", pytrace=False)
    pytest.skip(message)
