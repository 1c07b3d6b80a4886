"""Every kind of call the real server makes reaches its function through the serve path's guard (the body
limit, the HMAC of the bytes, and the binding of the body's events to `fnId`): an event trigger, a cron
tick, step.invoke, the UI's Invoke, and a failure handler. Nothing is refused along the way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.real.conftest import APP_FNS
from tests.real.trigger_kinds_app import CRON, FAILING, INVOKER
from tests.standin.fixtures import AppProcess
from tests.support import wait_until
from tests.support.inngest import InngestServer

APP = "fastapi-app"


@pytest.mark.slow
def test_each_kind_of_call_runs_with_the_guard_on(
    server: InngestServer, app_factory: Callable[..., AppProcess]
) -> None:
    app = app_factory(server, module="tests.real.trigger_kinds_app", LOG_LEVEL="INFO")
    extra = {f"{APP}-{CRON}", f"{APP}-{INVOKER}", f"{APP}-{FAILING}", f"{APP}-{FAILING}-failure"}
    server.wait_functions(APP_FNS | extra)

    sent = [
        server.send("test/integration", {"message": "event"}),
        server.send("kinds/invoke"),
        server.send("kinds/fail"),
    ]
    server.invoke(f"{APP}-nightly-cleanup")  # the UI's Invoke: inngest/function.invoked
    hello, invoker, failed = (server.wait_run_finished(event_id, 60)[0] for event_id in sent)

    def ended(slug: str) -> list[dict[str, Any]] | None:
        runs = [r for r in server.function_runs(slug) if r["status"] in ("COMPLETED", "FAILED")]
        return runs or None

    (handler,) = wait_until(lambda: ended(f"{APP}-{FAILING}-failure"), 60, what="the failure handler's run")
    (cleanup,) = wait_until(lambda: ended(f"{APP}-nightly-cleanup"), 60, what="the invoked cron function")
    ticks = wait_until(lambda: ended(f"{APP}-{CRON}"), 75, interval=1, what="a cron tick's run")
    invoked = wait_until(lambda: ended(f"{APP}-test-integration"), 30, what="test-integration's runs")

    assert (hello["status"], hello["output"]) == ("Completed", "event")
    assert (invoker["status"], invoker["output"]) == ("Completed", "invoked")  # test-integration's answer
    assert failed["status"] == "Failed"
    assert [r["status"] for r in (handler, cleanup, *ticks)] == ["COMPLETED"] * (2 + len(ticks))
    assert server.run(handler["id"])["output"] == f"handled {APP}-{FAILING}"
    assert sorted(r["eventName"] for r in invoked) == ["inngest/function.invoked", "test/integration"]
    assert "serve request refused" not in app.log_path.read_text(), app.log_tail()
