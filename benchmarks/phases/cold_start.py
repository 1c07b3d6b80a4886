"""Exec of the pinned process to its first ready answer, app and baseline alternately."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.config import Profile, log
from benchmarks.procs import Env
from benchmarks.stats import rnd


def run(env: Env, prof: Profile) -> dict[str, Any]:
    app_times: list[float] = []
    base_times: list[float] = []
    for _ in range(prof.cold_starts):
        server = env.start_app(track=False)
        app_times.append(server.ready_after)
        server.stop()
        server = env.start_baseline(track=False)
        base_times.append(server.ready_after)
        server.stop()
    app_s, base_s = statistics.median(app_times), statistics.median(base_times)
    log(f"cold start: app {app_s:.3f} s, baseline {base_s:.3f} s")
    return {
        "app_readyz_s": rnd(app_s, 3),
        "app_samples_s": [rnd(t, 3) for t in app_times],
        "baseline_first_response_s": rnd(base_s, 3),
        "baseline_samples_s": [rnd(t, 3) for t in base_times],
        "note": "exec of the pinned process to the first /readyz 200 (baseline: first HTTP answer), polled every 5 ms",
    }
