"""Shared fixtures. External tools are required in CI (REQUIRE_ALL=1) and optional elsewhere."""

from __future__ import annotations

from tests.support import ROOT, require_tool, unavailable
from tests.support.tools import VENV_BIN

# Session fixtures `postgres` and `redis`, for every suite.
pytest_plugins = ["tests.support.postgres", "tests.support.redis"]

__all__ = ["ROOT", "VENV_BIN", "require_tool", "unavailable"]
