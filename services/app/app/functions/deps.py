"""What every function module is built from: the client, and the services its body may use."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import inngest

from app.effects import Ledger
from app.settings import DEFAULT_COOL_OFF, DEFAULT_PAYMENT_TIMEOUT, DEFAULT_SIDE_EFFECTS_RETENTION_HOURS


@dataclass(frozen=True)
class Services:
    """What function bodies may use besides the SDK."""

    ledger: Ledger
    payment_timeout: datetime.timedelta = datetime.timedelta(seconds=DEFAULT_PAYMENT_TIMEOUT)
    cool_off: datetime.timedelta = datetime.timedelta(seconds=DEFAULT_COOL_OFF)
    # SIDE_EFFECTS_RETENTION_HOURS: how long the nightly cleanup keeps ledger records.
    retention: datetime.timedelta = datetime.timedelta(hours=DEFAULT_SIDE_EFFECTS_RETENTION_HOURS)


Builder = Callable[[inngest.Inngest, Services], inngest.Function[Any]]
