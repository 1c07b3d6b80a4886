"""The one table of targets: it drives the checks, the target column of the printed table and the README."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Result = dict[str, Any]

OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Target:
    name: str
    op: str
    bound: float | Callable[[Result], float]
    bound_text: str  # the bound as people read it ("1.20", "baseline p99")
    means: str
    value: Callable[[Result], float | None]

    @property
    def limit(self) -> str:
        return f"{self.op} {self.bound_text}"

    def check(self, result: Result) -> tuple[float | None, bool]:
        try:
            value = self.value(result)
            bound = self.bound(result) if callable(self.bound) else self.bound
        except KeyError:  # the phase did not run (--phases)
            return None, False
        return value, value is not None and OPS[self.op](value, bound)


TARGETS = (
    Target(
        "throughput_ratio",
        ">=",
        1.50,
        "1.50",
        "app req/s / baseline req/s, median of rounds",
        lambda r: r["throughput"]["ratio_median"],
    ),
    Target(
        "p99_not_worse",
        "<=",
        1.0,
        "1.00",
        "app p99 / baseline p99 of the same round, median of rounds",
        lambda r: r["throughput"]["p99_ratio_median"],
    ),
    Target(
        "e2e_runs_ratio",
        ">=",
        1.0,
        "1.00",
        "completed runs/s through the real server, app / baseline, median of rounds",
        lambda r: r["end_to_end"]["ratio"],
    ),
    Target(
        "e2e_p99_not_worse",
        "<=",
        1.0,
        "1.00",
        "event-to-Completed p99, app / baseline of the same round, median of rounds",
        lambda r: r["end_to_end"]["p99_ratio"]["median"],
    ),
    Target(
        "cold_start",
        "<=",
        1.5,
        "1.5 s",
        "exec to /readyz 200, median",
        lambda r: r["cold_start"]["app_readyz_s"],
    ),
    Target(
        "rss_growth",
        "<",
        5,
        "5 MB",
        "RSS growth after warm-up: from the first 1,000 calls to the last of 20,000 (quick mode: fewer)",
        lambda r: r["memory"]["app"]["growth_after_first_calls_mb"],
    ),
    Target(
        "metrics_latency",
        "<",
        10,
        "10 ms",
        "/metrics with 50 functions, median",
        lambda r: r["metrics"]["with_functions"]["median_ms"],
    ),
    Target(
        "sync_linear",
        "<=",
        1.5,
        "1.5",
        "marginal cost growth of the sync payload build (~1: linear in the number of functions)",
        lambda r: r["sync"]["marginal_growth"],
    ),
)
BY_NAME = {t.name: t for t in TARGETS}


def evaluate(result: Result) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target in TARGETS:
        value, met = target.check(result)
        out[target.name] = {"target": f"{target.limit} ({target.means})", "value": value, "met": met}
    return out


def cell(name: str, result: Result) -> str:
    """The target column of a table row: the limit and whether this result met it."""
    met = result["targets"][name]["met"]
    return f"{BY_NAME[name].limit}: {'met' if met else 'MISSED'}"
