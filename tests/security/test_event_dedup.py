"""Sends whose answers are lost are one event for the real Inngest server, and the app never claims that
nothing was sent when it cannot know. Every event leaves the app with an id (the caller's, namespaced, or
a generated one) before the SDK's retries; the server deduplicates by id."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.fuzz.harness import App
from tests.security.flaky_proxy import FlakyProxy
from tests.support import wait_until
from tests.support.inngest import InngestServer, inngest_server
from tests.support.metrics import scrape

TOKEN = secrets.token_hex(16)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[App, InngestServer, FlakyProxy]]:
    """The app, the real server syncing it, and the event sends going through a proxy that loses answers."""
    app = App(tmp_path, "http://127.0.0.1:1")
    with inngest_server(sdk_urls=[f"{app.url}/api/inngest"]) as server:
        proxy = FlakyProxy(server.url, lose=0)
        app.signing_key, app.event_key = server.signing_key, server.event_key
        app.env.update(
            INNGEST_BASE_URL=proxy.url,
            INNGEST_SIGNING_KEY=server.signing_key,
            INNGEST_EVENT_KEY=server.event_key,
            EVENT_API_KEYS=TOKEN,
        )
        try:
            app.start()
            wait_until(lambda: synced(app), 60, what="the server synced the app")
            yield app, server, proxy
        finally:
            app.stop()
            proxy.close()


def synced(app: App) -> bool:
    metrics = scrape(app.metrics_port, timeout=5)
    return 'app_inngest_sync_attempts_total{outcome="ok"}' in metrics


def send(app: App, event: Mapping[str, object]) -> httpx.Response:
    return httpx.post(f"{app.url}/api/events", json=event, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def distinct_runs(server: InngestServer, proxy: FlakyProxy) -> int:
    # Distinct run ids: the server lists a deduplicated event with the run it joined.
    ids = [i for sent in proxy.sends for i in sent]
    return len({run["run_id"] for i in ids for run in server.runs_for_event(i)})


def settled_runs(server: InngestServer, proxy: FlakyProxy) -> int:
    wait_until(lambda: distinct_runs(server, proxy) >= 1, 60, what="the run")
    time.sleep(3)  # a duplicate would have started by now (the queue ticks every 150 ms)
    return distinct_runs(server, proxy)


def test_a_send_the_sdk_retried_starts_one_run(stack: tuple[App, InngestServer, FlakyProxy]) -> None:
    app, server, proxy = stack
    proxy.lose = 2
    res = send(app, {"name": "test/integration", "data": {"message": "once"}})
    assert res.status_code == 200, res.text
    assert len(proxy.sends) == 3, proxy.sends  # two answers lost: the SDK sent three times
    assert settled_runs(server, proxy) == 1


def test_no_answer_is_not_called_nothing_sent_and_a_retry_with_an_id_is_one_run(
    stack: tuple[App, InngestServer, FlakyProxy],
) -> None:
    app, server, proxy = stack
    proxy.lose = 5  # every attempt of the SDK arrives, no answer comes back
    event = {"name": "test/integration", "data": {"message": "once"}, "id": "order-7-confirmation"}
    lost = send(app, event)
    assert lost.status_code == 503 and lost.headers["retry-after"]
    assert "nothing was sent" not in lost.text, "the events did arrive"
    assert len(proxy.sends) == 5
    assert send(app, event).status_code == 200  # the caller's retry
    assert settled_runs(server, proxy) == 1
