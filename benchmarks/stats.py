"""Small statistics on the measured samples (no numpy: the runner needs nothing beyond the app's venv)."""

from __future__ import annotations

import itertools
from typing import Any


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def rnd(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def marginal(ys: list[float], xs: list[float]) -> tuple[list[dict[str, Any]], float | None]:
    segments = [
        (x0, x1, round((y1 - y0) / (x1 - x0), 5)) for (x0, y0), (x1, y1) in itertools.pairwise(zip(xs, ys, strict=True))
    ]
    slopes = [{"from": int(x0), "to": int(x1), "ms_per_function": slope} for x0, x1, slope in segments]
    first, last = segments[0][2], segments[-1][2]
    growth = rnd(last / first, 3) if len(segments) >= 2 and first > 0 else None
    return slopes, growth


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float | None]:
    """Least squares y = a + b*x with R^2."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if not sxx:
        return {"fixed_ms": None, "ms_per_function": None, "r2": None}
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return {
        "fixed_ms": rnd(intercept, 3),
        "ms_per_function": rnd(slope, 4),
        "r2": rnd(1 - ss_res / ss_tot, 4) if ss_tot else None,
    }
