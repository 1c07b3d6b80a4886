"""`shop/order.item.reserve` -> reserve one item (the order workflow's fan-out target)."""

from __future__ import annotations

from typing import Any

import inngest
from sqlalchemy.ext.asyncio import AsyncConnection

from app.functions.deps import Services
from app.schema import reservations


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
            async def effect(conn: AsyncConnection) -> dict[str, Any]:
                reservation = {"order_id": data.get("order_id"), "sku": data.get("sku"), "qty": data.get("qty", 1)}
                await conn.execute(reservations.insert().values(run_id=ctx.run_id, **reservation))
                return reservation

            return dict(await ledger.apply(ctx.run_id, "reserve", "item.reserved", effect))

        return await ctx.step.run("reserve", reserve)

    return reserve_item
