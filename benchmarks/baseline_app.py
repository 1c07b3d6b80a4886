"""Baseline for `make bench`: the shape of the inngest-py FastAPI example, nothing more.

One client, the example's function, `inngest.fast_api.serve(...)`, served by uvicorn with its defaults. A plain
`pip install uvicorn` has neither uvloop nor httptools, so the runner starts this module with
`--loop asyncio --http h11` to model that install (this venv has both, pulled in by the app). Production
mode: requests must carry a valid `X-Inngest-Signature` (key from `INNGEST_SIGNING_KEY`), and the API
origin comes from `INNGEST_BASE_URL`, exactly as the SDK reads them.

It also serves the end-to-end phase's three-step workflow (`bench_functions.three_steps`, the same code the
app serves there), so both sides of that comparison run the same function body.

Run (from the repository root): python -m uvicorn benchmarks.baseline_app:app --loop asyncio --http h11
"""

from __future__ import annotations

import logging

import fastapi
import inngest
import inngest.fast_api

from benchmarks.bench_functions import three_steps

inngest_client = inngest.Inngest(
    app_id="fastapi-app",
    logger=logging.getLogger("uvicorn"),
    is_production=True,
)


@inngest_client.create_function(
    fn_id="test-integration",
    trigger=inngest.TriggerEvent(event="test/integration"),
)
async def test_integration(ctx: inngest.Context) -> str:
    # Same body as the app's function: validate, log one line, return the message.
    message = ctx.event.data.get("message")
    if not isinstance(message, str):
        raise inngest.NonRetriableError("event data needs a string `message`")
    ctx.logger.debug("test/integration received", extra={"message_length": len(message)})
    return message


app = fastapi.FastAPI()
inngest.fast_api.serve(app, inngest_client, [test_integration, three_steps(inngest_client)])
