"""What every function module is built from: the client, and the services its body may use."""

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
