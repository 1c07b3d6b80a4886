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


# The end-to-end phase's workflow: three steps that do no I/O, served by the app and by the baseline alike.
E2E_FN_ID = "e2e-three-steps"
E2E_EVENT = "bench/e2e.three-steps"
E2E_STEPS = ("first", "second", "third")


def three_steps(client: inngest.Inngest, services: Any = None) -> inngest.Function[Any]:
    # retries=0: a failure shows as a failed run instead of a slower figure.
    @client.create_function(fn_id=E2E_FN_ID, retries=0, trigger=inngest.TriggerEvent(event=E2E_EVENT))
    async def handler(ctx: inngest.Context) -> dict[str, int]:
        total = 0
        for index, step_id in enumerate(E2E_STEPS):

            async def step(n: int = index) -> int:
                return n + 1

            total += await ctx.step.run(step_id, step)
        return {"steps": len(E2E_STEPS), "total": total}

    return handler
