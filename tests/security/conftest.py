"""The app as an outsider meets it: a real process on loopback, self-hosted mode, signatures on.

`secure_app(**env)` starts `python -m app` against a loopback event sink (tests.fuzz.harness) with the
given settings on top; every process is stopped at the end of the test.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fuzz.harness import App, EventSink


@pytest.fixture
def secure_app(tmp_path: Path) -> Iterator[Callable[..., tuple[App, EventSink]]]:
    started: list[tuple[App, EventSink]] = []

    def start(base_url: str | None = None, **env: str) -> tuple[App, EventSink]:
        event_key = secrets.token_hex(16)
        sink = EventSink(event_key).start()
        app = App(tmp_path, base_url or sink.url, event_key=event_key)
        app.env.update(env)
        started.append((app, sink))
        return app.start(), sink

    yield start
    for app, sink in started:
        app.stop()
        sink.stop()
