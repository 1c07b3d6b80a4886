"""Test-only build of the app with one extra function: a "redeploy" with a changed function list.

`python -m tests.real.redeployed_app` runs the product's CLI unchanged; only the function list differs.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# One worker keeps its metrics in memory: the launcher drops PROMETHEUS_MULTIPROC_DIR before the app's
# modules load. This entry point imports them first, so it drops it first.
if int(os.environ.get("WEB_CONCURRENCY", "1")) == 1:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import inngest

from app import functions as product
from app.functions.deps import Services

EXTRA_ID = "redeployed"
_product_builders = product.builders


def _extra(client: inngest.Inngest, services: Services) -> inngest.Function[Any]:
    @client.create_function(fn_id=EXTRA_ID, trigger=inngest.TriggerEvent(event="deploy/redeployed"))
    async def redeployed(ctx: inngest.Context) -> str:
        return "new build"

    return redeployed


if __name__ == "__main__":  # patched only in the app process, never in the test process importing EXTRA_ID
    from app.cli import main

    product.builders = lambda: [*_product_builders(), _extra]

    sys.exit(main())
