"""Fixtures for the bad-input scenario: one app process per module and a tally of every request tried."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fuzz.harness import App, EventSink, Tally, running_app

_TALLY = Tally()


@pytest.fixture(scope="session")
def tally() -> Tally:
    return _TALLY


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[App, EventSink]]:
    """The app (`python -m app`, self-hosted) with a loopback event sink; the log tail is shown on failure."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp, running_app(Path(tmp)) as (app, sink):
        yield app, sink


@pytest.fixture
def client(target: tuple[App, EventSink]) -> Iterator[httpx.Client]:
    app, _ = target
    with httpx.Client(base_url=app.url, timeout=30, headers=app.auth) as http:
        yield http


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TALLY.count():
        terminalreporter.write_sep("-", f"bad input: {_TALLY.count()} requests tried ({time.strftime('%H:%M:%S')})")
        terminalreporter.write_line(_TALLY.report())
