"""Shared fixtures. External tools are required in CI (REQUIRE_ALL=1) and optional elsewhere."""

from __future__ import annotations

from collections.abc import Generator

import pluggy
import pytest

from tests.support import ROOT, require_tool, unavailable
from tests.support.tools import VENV_BIN

# Session fixtures `postgres` and `redis`, for every suite.
pytest_plugins = ["tests.support.postgres", "tests.support.redis"]

__all__ = ["ROOT", "VENV_BIN", "require_tool", "unavailable"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    """Keep each phase's report on the test item (`rep_call`): factory fixtures print logs of failed tests."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
