"""A minimal SDK app (not the product) that exercises every opcode the stand-in handles.

`uvicorn tests.standin.sample_app:app`, configured by INNGEST_* like the product. Test-only.
"""

from __future__ import annotations

import datetime
import os

import fastapi
import inngest
import inngest.fast_api

client = inngest.Inngest(
    app_id="sample",
    is_production=True,
    signing_key=os.environ["INNGEST_SIGNING_KEY"],
    event_key=os.environ["INNGEST_EVENT_KEY"],
    api_base_url=os.environ["INNGEST_BASE_URL"],
    event_api_base_url=os.environ["INNGEST_BASE_URL"],
)
EFFECTS = os.environ.get("SAMPLE_EFFECTS_FILE", "/dev/null")


def effect(line: str) -> None:
    with open(EFFECTS, "a") as f:
        f.write(line + "\n")


@client.create_function(fn_id="steps", trigger=inngest.TriggerEvent(event="sample/steps"))
async def steps(ctx: inngest.Context) -> int:
    total = 0
    for i in range(3):

        async def add(i: int = i) -> int:
            effect(f"{ctx.run_id} add-{i}")
            return i + 1

        total += await ctx.step.run(f"add-{i}", add)
    return total


@client.create_function(fn_id="sleepy", trigger=inngest.TriggerEvent(event="sample/sleep"))
async def sleepy(ctx: inngest.Context) -> str:
    await ctx.step.sleep("nap", datetime.timedelta(hours=1))
    return "rested"


@client.create_function(fn_id="waiter", trigger=inngest.TriggerEvent(event="sample/wait"))
async def waiter(ctx: inngest.Context) -> object:
    got = await ctx.step.wait_for_event(
        "reply", event="sample/reply", if_exp="async.data.key == event.data.key", timeout=datetime.timedelta(hours=1)
    )
    return None if got is None else got.data


@client.create_function(fn_id="flaky", trigger=inngest.TriggerEvent(event="sample/flaky"), retries=2)
async def flaky(ctx: inngest.Context) -> str:
    async def attempt() -> str:
        if ctx.attempt < int(str(ctx.event.data.get("fail_times", 1))):
            raise RuntimeError(f"boom {ctx.attempt}")
        return f"ok after {ctx.attempt}"

    return await ctx.step.run("try", attempt)


@client.create_function(fn_id="fatal", trigger=inngest.TriggerEvent(event="sample/fatal"))
async def fatal(ctx: inngest.Context) -> None:
    raise inngest.NonRetriableError("no way")


@client.create_function(fn_id="fanout", trigger=inngest.TriggerEvent(event="sample/fanout"))
async def fanout(ctx: inngest.Context) -> list[str]:
    events = [inngest.Event(name="sample/child", data={"n": n}) for n in range(3)]
    return await ctx.step.send_event("fan", events)


@client.create_function(fn_id="child", trigger=inngest.TriggerEvent(event="sample/child"))
async def child(ctx: inngest.Context) -> int:
    return int(str(ctx.event.data["n"])) * 10


@client.create_function(fn_id="nightly", trigger=inngest.TriggerCron(cron="0 3 * * *"))
async def nightly(ctx: inngest.Context) -> str:
    return ctx.event.name


app = fastapi.FastAPI()
inngest.fast_api.serve(
    app,
    client,
    [steps, sleepy, waiter, flaky, fatal, fanout, child, nightly],
    serve_origin=os.environ["INNGEST_SERVE_ORIGIN"],
)
