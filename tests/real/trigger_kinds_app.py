"""Test-only build of the app with a function for each way the server starts a run besides an event:
a cron every minute, a step.invoke of another function, and a failure handler.

`python -m tests.real.trigger_kinds_app` runs the product's CLI unchanged; only the function list grows.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# One worker keeps its metrics in memory: the launcher drops PROMETHEUS_MULTIPROC_DIR before the app's
# modules load. This entry point imports them first, so it drops it first.
if int(os.environ.get("WEB_CONCURRENCY", "1")) == 1:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import inngest

from app import functions as product
from app.functions.deps import Services

CRON, INVOKER, FAILING = "every-minute", "invoker", "failing"
_product_builders = product.builders


def _cron(client: inngest.Inngest, services: Services) -> inngest.Function[Any]:
    @client.create_function(fn_id=CRON, trigger=inngest.TriggerCron(cron="* * * * *"))
    async def every_minute(ctx: inngest.Context) -> str:
        return "tick"

    return every_minute


def _invoker(client: inngest.Inngest, services: Services) -> inngest.Function[Any]:
    @client.create_function(fn_id=INVOKER, trigger=inngest.TriggerEvent(event="kinds/invoke"))
    async def invoker(ctx: inngest.Context) -> Any:
        data = {"message": "invoked"}
        return await ctx.step.invoke_by_id("call", function_id="test-integration", data=data)

    return invoker


def _failing(client: inngest.Inngest, services: Services) -> inngest.Function[Any]:
    async def on_failure(ctx: inngest.Context) -> str:
        return f"handled {ctx.event.data.get('function_id')}"

    @client.create_function(
        fn_id=FAILING, trigger=inngest.TriggerEvent(event="kinds/fail"), retries=0, on_failure=on_failure
    )
    async def failing(ctx: inngest.Context) -> None:
        raise inngest.NonRetriableError("fails on purpose")

    return failing


if __name__ == "__main__":  # patched only in the app process, never in the test process importing the ids
    from app.cli import main

    product.builders = lambda: [*_product_builders(), _cron, _invoker, _failing]

    sys.exit(main())
