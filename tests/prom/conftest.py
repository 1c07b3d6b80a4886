"""Fixtures: the stand-in and the app as processes (shared with the end-to-end tests) and a Prometheus."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.prom.harness import Prometheus
from tests.standin.fixtures import *  # noqa: F403
from tests.support.process import closed_after


@pytest.fixture
def prometheus_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], Prometheus]]:
    """Unstarted Prometheus handles in temp dirs; stopped at the end, log tail printed on failure."""
    binary = require_tool("prometheus", "install Debian's prometheus package (apt-get install prometheus)")
    with tempfile.TemporaryDirectory(prefix="prom-") as tmp, closed_after(request, Prometheus.label) as made:

        def make() -> Prometheus:
            workdir = Path(tmp) / str(len(made))
            workdir.mkdir()
            made.append(Prometheus(binary, workdir))
            return made[-1]

        yield make
