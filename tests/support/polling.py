"""One way to wait for a condition in every suite."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float, interval: float = 0.1, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy and return it; fail naming `what` after `timeout` s.

    Connection errors and unparsable answers count as "not yet" (the thing polled may still be starting).
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:  # falsy (None, False, empty) means not yet
                return value
        except (httpx.HTTPError, OSError, ValueError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
            )
        time.sleep(interval)
