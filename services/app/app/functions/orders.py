"""`shop/order.created` -> validate, reserve items (fan-out), wait for payment, charge, cool off, ship.

Shows every step kind: step.run, step.send_event, step.wait_for_event (with timeout), step.sleep, retries
(a flaky carrier) and a non-retriable path (an invalid order), under a per-customer concurrency limit.
"""

from __future__ import annotations

import logging
from typing import Any

import inngest
from sqlalchemy.ext.asyncio import AsyncConnection

from app.functions.deps import Services
from app.schema import cancellations, payments, shipments

RETRIES = 3
log = logging.getLogger(__name__)


class CarrierUnavailable(Exception):
    """Transient: the server retries the step."""


def _validate(data: dict[str, Any]) -> dict[str, Any]:
    order_id = data.get("order_id")
    items = data.get("items")
    if not isinstance(order_id, str) or not order_id:
        raise inngest.NonRetriableError("order needs a non-empty string order_id")
    if not isinstance(items, list) or not items:
        raise inngest.NonRetriableError(f"order {order_id} has no items")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("sku"), str):
            raise inngest.NonRetriableError(f"order {order_id} has an item without a sku")
        qty = item.get("qty", 1)
        if not isinstance(qty, int) or qty < 1:
            raise inngest.NonRetriableError(f"order {order_id}: quantity of {item['sku']} must be >= 1")
    return {"order_id": order_id, "items": [{"sku": i["sku"], "qty": i.get("qty", 1)} for i in items]}


def build(client: inngest.Inngest, services: Services) -> inngest.Function[Any]:
    ledger = services.ledger
    payment_timeout, cool_off = services.payment_timeout, services.cool_off

    @client.create_function(
        fn_id="process-order",
        trigger=inngest.TriggerEvent(event="shop/order.created"),
        retries=RETRIES,
        # One customer's orders run at most two at a time; others are not held up.
        concurrency=[inngest.Concurrency(limit=2, key="event.data.customer_id")],
    )
    async def process_order(ctx: inngest.Context) -> dict[str, Any]:
        data = ctx.event.data

        async def validate() -> dict[str, Any]:
            return _validate(dict(data))

        order = await ctx.step.run("validate-order", validate)
        order_id = order["order_id"]

        await ctx.step.send_event(
            "reserve-items",
            [
                # Deterministic ids: a re-sent fan-out is deduplicated by the server.
                inngest.Event(
                    name="shop/order.item.reserve",
                    id=f"reserve-{order_id}-{item['sku']}",
                    data={"order_id": order_id, **item},
                )
                for item in order["items"]
            ],
        )

        payment = await ctx.step.wait_for_event(
            "wait-for-payment",
            event="shop/payment.confirmed",
            if_exp="async.data.order_id == event.data.order_id",
            timeout=payment_timeout,
        )
        if payment is None:

            async def cancel(conn: AsyncConnection) -> dict[str, Any]:
                reason = "payment timeout"
                await conn.execute(cancellations.insert().values(run_id=ctx.run_id, order_id=order_id, reason=reason))
                return {"order_id": order_id, "status": "cancelled", "reason": reason}

            return dict(await ledger.apply(ctx.run_id, "cancel-order", "order.cancelled", cancel))

        amount = payment.data.get("amount")

        async def charge() -> dict[str, Any]:
            async def effect(conn: AsyncConnection) -> dict[str, Any]:
                await conn.execute(payments.insert().values(run_id=ctx.run_id, order_id=order_id, amount=amount))
                return {"order_id": order_id, "amount": amount}

            return dict(await ledger.apply(ctx.run_id, "charge-payment", "payment.captured", effect))

        await ctx.step.run("charge-payment", charge)
        await ctx.step.sleep("cool-off", cool_off)  # time to cancel before shipping

        async def ship() -> dict[str, Any]:
            # Fails the first `carrier_failures` attempts: exercises the server's step retries.
            log.info("handing the order to the carrier", extra={"order_id": order_id})
            failures = data.get("carrier_failures", 0)
            if isinstance(failures, int) and ctx.attempt < failures:
                raise CarrierUnavailable(f"carrier unavailable (attempt {ctx.attempt})")

            async def effect(conn: AsyncConnection) -> dict[str, Any]:
                shipment_id = f"shp-{order_id}"
                await conn.execute(
                    shipments.insert().values(run_id=ctx.run_id, order_id=order_id, shipment_id=shipment_id)
                )
                return {"shipment_id": shipment_id}

            return dict(await ledger.apply(ctx.run_id, "ship-order", "order.shipped", effect))

        shipment = await ctx.step.run("ship-order", ship)
        ctx.logger.info("order shipped", extra={"order_id": order_id})
        return {"order_id": order_id, "status": "shipped", "items": len(order["items"]), **shipment}

    return process_order
