"""Nightly cron: forget side-effect records older than the server's longest retry horizon.

The horizon is SIDE_EFFECTS_RETENTION_HOURS (its reasoning is in app.settings); the settings refuse one
shorter than the server's retry schedule, so a record is only forgotten once no retry can ask for it.
"""

from __future__ import annotations

from typing import Any

import inngest

from app.functions.deps import Services


def build(client: inngest.Inngest, services: Services) -> inngest.Function[Any]:
    ledger = services.ledger
    retention = services.retention

    @client.create_function(fn_id="nightly-cleanup", trigger=inngest.TriggerCron(cron="TZ=UTC 0 3 * * *"))
    async def nightly_cleanup(ctx: inngest.Context) -> dict[str, int]:
        async def purge() -> int:
            return await ledger.purge_older_than(retention)

        purged = await ctx.step.run("purge-side-effects", purge)
        return {"purged": purged}

    return nightly_cleanup
