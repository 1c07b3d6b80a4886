"""Every Inngest function the app serves. Adding one = a new module with `build` + one line below."""

from __future__ import annotations

from typing import Any

import inngest

from app.functions import cleanup, inventory, orders, smoke
from app.functions.deps import Builder, Services


def builders() -> list[Builder]:
    return [
        smoke.build,
        orders.build,
        inventory.build,
        cleanup.build,
    ]


def build_functions(client: inngest.Inngest, services: Services) -> list[inngest.Function[Any]]:
    return [build(client, services) for build in builders()]
