"""Every Inngest function the app serves. Adding one = a new module with `build` + one line below."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import inngest

from app.effects import Ledger


@dataclass(frozen=True)
class Services:
    """What function bodies may use besides the SDK."""

    ledger: Ledger


Builder = Callable[[inngest.Inngest, Services], inngest.Function[Any]]


def builders() -> list[Builder]:
    from app.functions import cleanup, inventory, orders, test_integration

    return [
        test_integration.build,
        orders.build,
        inventory.build,
        cleanup.build,
    ]


def build_functions(client: inngest.Inngest, services: Services) -> list[inngest.Function[Any]]:
    return [build(client, services) for build in builders()]
