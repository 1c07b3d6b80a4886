"""`shop/order.item.reserve` -> reserve one item (the order workflow's fan-out target)."""

from __future__ import annotations

import sqlite3
from typing import Any

import inngest

from app.functions.deps import Services


def build(client: inngest.Inngest, services: Services) -> inngest.Function[Any]:
    ledger = services.ledger

    @client.create_function(
        fn_id="reserve-item",
        trigger=inngest.TriggerEvent(event="shop/order.item.reserve"),
        retries=5,
    )
    async def reserve_item(ctx: inngest.Context) -> dict[str, Any]:
        data = ctx.event.data

        async def reserve() -> dict[str, Any]:
            def effect(db: sqlite3.Connection) -> dict[str, Any]:
                return {"order_id": data.get("order_id"), "sku": data.get("sku"), "qty": data.get("qty", 1)}

            return dict(await ledger.apply(ctx.run_id, "reserve", "item.reserved", effect))

        return await ctx.step.run("reserve", reserve)

    return reserve_item
