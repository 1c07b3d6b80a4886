"""`test/integration` -> returns its message: the smoke test of the whole server <-> app loop."""

from __future__ import annotations

from typing import Any

import inngest

from app.functions.deps import Services


def build(client: inngest.Inngest, services: Services) -> inngest.Function[Any]:
    @client.create_function(fn_id="test-integration", trigger=inngest.TriggerEvent(event="test/integration"))
    async def test_integration(ctx: inngest.Context) -> str:
        message = ctx.event.data.get("message")
        if not isinstance(message, str):
            raise inngest.NonRetriableError("event data needs a string `message`")
        ctx.logger.debug("test/integration received", extra={"message_length": len(message)})
        return message

    return test_integration
