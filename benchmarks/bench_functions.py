"""Extra Inngest functions for the benchmarks: N similar event-triggered functions.

Each one is a realistic small function (one `step.run`, retries set, an event trigger of its own), so the
sync payload and the per-function metric series grow the way a real app with N functions would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import inngest

Builder = Callable[[inngest.Inngest, Any], inngest.Function[Any]]


def bench_fn_id(index: int) -> str:
    return f"bench-fn-{index:03d}"


def builder(index: int) -> Builder:
    def build(client: inngest.Inngest, services: Any) -> inngest.Function[Any]:
        @client.create_function(
            fn_id=bench_fn_id(index),
            name=f"Bench function {index}",
            retries=3,
            trigger=inngest.TriggerEvent(event=f"bench/fn.{index}"),
        )
        async def handler(ctx: inngest.Context) -> dict[str, Any]:
            async def work() -> int:
                return len(ctx.event.data)

            size = await ctx.step.run("work", work)
            return {"index": index, "size": size}

        return handler

    return build


def builders(count: int) -> list[Builder]:
    return [builder(i) for i in range(count)]
