"""Each workflow's branches, executed by the SDK's mocked executor (no server)."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any

import inngest
import pytest
from inngest.experimental import mocked
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import async_engine
from app.effects import Ledger
from app.functions import build_functions, cleanup, inventory, orders, smoke
from app.functions.deps import Services
from app.migrate import upgrade
from app.schema import side_effects

RETENTION = datetime.timedelta(days=7)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    url = f"sqlite:///{tmp_path / 'effects.sqlite3'}"
    upgrade(url)
    return Ledger(async_engine(url))


def services(ledger: Ledger) -> Services:
    return Services(ledger=ledger, retention=RETENTION)


def count(ledger: Ledger, kind: str | None = None) -> int:
    return asyncio.run(ledger.count(kind))


@pytest.fixture
def client() -> mocked.Inngest:
    return mocked.Inngest(app_id="fastapi-app", is_production=False)


def order(**overrides: Any) -> inngest.Event:
    data = {"order_id": "o-1", "customer_id": "c-1", "items": [{"sku": "book", "qty": 2}, {"sku": "pen"}]} | overrides
    return inngest.Event(name="shop/order.created", data=data)


PAID = inngest.Event(name="shop/payment.confirmed", data={"order_id": "o-1", "amount": 42})


def test_registered_list_has_every_workflow(client: mocked.Inngest, ledger: Ledger) -> None:
    fns = build_functions(client, services(ledger))
    assert [f.local_id for f in fns] == ["test-integration", "process-order", "reserve-item", "nightly-cleanup"]


def test_integration_returns_the_message(client: mocked.Inngest, ledger: Ledger) -> None:
    fn = smoke.build(client, services(ledger))
    res = mocked.trigger(fn, inngest.Event(name="test/integration", data={"message": "Hello"}), client)
    assert res.status is mocked.Status.COMPLETED
    assert res.output == "Hello"


def test_integration_without_message_fails_permanently(client: mocked.Inngest, ledger: Ledger) -> None:
    fn = smoke.build(client, services(ledger))
    res = mocked.trigger(fn, inngest.Event(name="test/integration", data={}), client)
    assert res.status is mocked.Status.FAILED
    assert isinstance(res.error, inngest.NonRetriableError)


def test_order_happy_path_ships_once(client: mocked.Inngest, ledger: Ledger) -> None:
    fn = orders.build(client, services(ledger))
    res = mocked.trigger(fn, order(), client, step_stubs={"wait-for-payment": PAID})
    assert res.status is mocked.Status.COMPLETED, res.error
    assert res.output == {"order_id": "o-1", "status": "shipped", "items": 2, "shipment_id": "shp-o-1"}
    assert count(ledger, "payment.captured") == 1
    assert count(ledger, "order.shipped") == 1


def test_order_payment_timeout_cancels(client: mocked.Inngest, ledger: Ledger) -> None:
    fn = orders.build(client, services(ledger))
    res = mocked.trigger(fn, order(), client, step_stubs={"wait-for-payment": mocked.Timeout})
    assert res.status is mocked.Status.COMPLETED
    assert res.output == {"order_id": "o-1", "status": "cancelled", "reason": "payment timeout"}
    assert count(ledger, "payment.captured") == 0 and count(ledger, "order.cancelled") == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"items": []}, "has no items"),
        ({"order_id": ""}, "order_id"),
        ({"items": [{"qty": 1}]}, "without a sku"),
        ({"items": [{"sku": "a", "qty": 0}]}, "quantity"),
    ],
)
def test_invalid_order_fails_without_side_effects(
    client: mocked.Inngest, ledger: Ledger, data: dict[str, Any], reason: str
) -> None:
    fn = orders.build(client, services(ledger))
    res = mocked.trigger(fn, order(**data), client, step_stubs={"wait-for-payment": PAID})
    assert res.status is mocked.Status.FAILED
    assert reason in str(res.error)
    assert count(ledger) == 0


def test_flaky_carrier_is_retried_until_it_ships(client: mocked.Inngest, ledger: Ledger) -> None:
    fn = orders.build(client, services(ledger))
    res = mocked.trigger(fn, order(carrier_failures=2), client, step_stubs={"wait-for-payment": PAID})
    assert res.status is mocked.Status.COMPLETED, res.error
    assert isinstance(res.output, dict)
    assert res.output["status"] == "shipped"
    assert count(ledger, "order.shipped") == 1


def test_carrier_down_longer_than_the_retries_fails_the_run(client: mocked.Inngest, ledger: Ledger) -> None:
    fn = orders.build(client, services(ledger))
    res = mocked.trigger(fn, order(carrier_failures=orders.RETRIES + 5), client, step_stubs={"wait-for-payment": PAID})
    assert res.status is mocked.Status.FAILED
    assert "carrier unavailable" in str(res.error)
    assert count(ledger, "order.shipped") == 0
    assert count(ledger, "payment.captured") == 1


def test_order_config_has_flow_control_and_fan_out_trigger(client: mocked.Inngest, ledger: Ledger) -> None:
    config = orders.build(client, services(ledger)).get_config("http://app:8000/api/inngest").main
    assert config.concurrency and config.concurrency[0].limit == 2
    assert config.model_dump()["steps"]["step"]["retries"]["attempts"] == orders.RETRIES
    assert config.model_dump()["steps"]["step"]["runtime"]["url"].startswith(
        "http://app:8000/api/inngest?fnId=fastapi-app-process-order"
    )


def test_reserve_item_is_idempotent_per_run(client: mocked.Inngest, ledger: Ledger) -> None:
    fn = inventory.build(client, services(ledger))
    event = inngest.Event(name="shop/order.item.reserve", data={"order_id": "o-1", "sku": "book", "qty": 2})
    first = mocked.trigger(fn, event, client)
    again = mocked.trigger(fn, event, client)  # same run id ("test"): a replay must not reserve twice
    assert first.output == again.output == {"order_id": "o-1", "sku": "book", "qty": 2}
    assert count(ledger, "item.reserved") == 1


async def test_ledger_applies_each_key_once_under_concurrency(ledger: Ledger) -> None:
    calls = 0

    async def effect(conn: AsyncConnection) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)  # the others arrive while the first still holds the key
        return calls

    results = await asyncio.gather(*(ledger.apply("run", "step", "k", effect) for _ in range(20)))
    assert calls == 1 and set(results) == {1}
    assert await ledger.count("k") == 1


async def test_a_failed_effect_leaves_no_record_and_runs_again(ledger: Ledger) -> None:
    async def failing(conn: AsyncConnection) -> int:
        raise RuntimeError("carrier down")

    async def working(conn: AsyncConnection) -> int:
        return 7

    with pytest.raises(RuntimeError):
        await ledger.apply("run", "step", "k", failing)
    assert await ledger.count() == 0
    assert await ledger.apply("run", "step", "k", working) == 7


def test_cleanup_cron_purges_old_records(client: mocked.Inngest, ledger: Ledger) -> None:
    fn = cleanup.build(client, services(ledger))
    trigger = fn.get_config("http://app:8000/api/inngest").main.triggers[0]
    assert isinstance(trigger, inngest.TriggerCron)
    assert trigger.cron == "TZ=UTC 0 3 * * *"

    async def one(conn: AsyncConnection) -> int:
        return 1

    async def age(run_id: str, by: datetime.timedelta) -> None:
        await ledger.apply(run_id, "s", "k", one)
        async with ledger.engine.begin() as conn:
            stamp = datetime.datetime.now(datetime.UTC) - by
            await conn.execute(update(side_effects).where(side_effects.c.run_id == run_id).values(created_at=stamp))

    # Just past the horizon goes; just inside it stays (a retry may still ask for it).
    asyncio.run(age("old", RETENTION + datetime.timedelta(minutes=1)))
    asyncio.run(age("recent", RETENTION - datetime.timedelta(minutes=1)))
    res = mocked.trigger(fn, inngest.Event(name="inngest/scheduled.timer", data={}), client)
    assert res.status is mocked.Status.COMPLETED
    assert res.output == {"purged": 1}
    assert count(ledger) == 1
    assert asyncio.run(ledger.apply("recent", "s", "k", one)) == 1  # still replayed, not performed again


def test_the_schema_module_names_the_newest_migration(tmp_path: Path) -> None:
    from app.db import sqlite_revision
    from app.migrate import head
    from app.schema import HEAD_REVISION

    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    assert sqlite_revision(url) is None
    upgrade(url)
    assert sqlite_revision(url) == head() == HEAD_REVISION
