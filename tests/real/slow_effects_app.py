"""Test-only build of the app whose side effects each take `SIDE_EFFECT_DELAY` seconds (default 2).

`python -m tests.real.slow_effects_app` runs the product's CLI and functions unchanged; only the ledger's
`apply` waits before it records an effect, so the steps that perform one (charge-payment, ship-order) last
long enough for the server's concurrency limit to show in their timing.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

# One worker keeps its metrics in memory: the launcher drops PROMETHEUS_MULTIPROC_DIR before the app's
# modules load. This entry point imports them first, so it drops it first.
if int(os.environ.get("WEB_CONCURRENCY", "1")) == 1:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from app.effects import Ledger

_apply = Ledger.apply


async def _slow_apply(self: Ledger, *args: Any, **kwargs: Any) -> Any:
    await asyncio.sleep(float(os.environ.get("SIDE_EFFECT_DELAY", "2")))
    return await _apply(self, *args, **kwargs)


if __name__ == "__main__":
    from app.cli import main

    Ledger.apply = _slow_apply  # type: ignore[method-assign]

    sys.exit(main())
