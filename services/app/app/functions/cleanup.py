"""Nightly cron: forget side-effect records older than the server's longest retry horizon."""

from __future__ import annotations

import datetime
from typing import Any

import inngest

from app.functions.deps import Services

# Runs are retried or replayed for at most days, never weeks: a week of records is plenty.
RETENTION = datetime.timedelta(days=7)


def build(client: inngest.Inngest, services: Services) -> inngest.Function[Any]:
    ledger = services.ledger

    @client.create_function(fn_id="nightly-cleanup", trigger=inngest.TriggerCron(cron="TZ=UTC 0 3 * * *"))
    async def nightly_cleanup(ctx: inngest.Context) -> dict[str, int]:
        async def purge() -> int:
            return await ledger.purge_older_than(RETENTION.total_seconds())

        purged = await ctx.step.run("purge-side-effects", purge)
        return {"purged": purged}

    return nightly_cleanup
