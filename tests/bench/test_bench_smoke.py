"""`make bench QUICK=1` runs end to end and writes well-formed JSON. Figures are not asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, require_tool

TOP_LEVEL = {
    "schema_version",
    "generated_at",
    "quick",
    "machine",
    "config",
    "checks",
    "throughput",
    "memory",
    "events",
    "metrics",
    "sync",
    "cold_start",
    "targets",
    "elapsed_s",
}
PER_SERVER = {"rps", "p50_ms", "p90_ms", "p99_ms"}


@pytest.mark.slow
def test_make_bench_quick(tmp_path: Path) -> None:
    require_tool("wrk", "apt-get install wrk (Debian package)")
    require_tool("make", "apt-get install make")
    out = tmp_path / "bench.json"
    started = time.monotonic()
    proc = subprocess.run(
        ["make", "--no-print-directory", "bench", "QUICK=1", f"BENCH_OUT={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "metric" in proc.stdout and "req/s" in proc.stdout, proc.stdout  # the table was printed

    result = json.loads(out.read_text())
    assert result.keys() >= TOP_LEVEL
    assert result["quick"] is True
    assert {"cpu_model", "cpus", "python", "packages"} <= result["machine"].keys()
    throughput = result["throughput"]
    for server in ("baseline", "app"):
        assert throughput[server].keys() >= PER_SERVER
        assert throughput[server]["rps"] > 0
    assert throughput["ratio_median"] > 0
    assert len(throughput["rounds"]) >= 2
    assert {"idle_rss_mb", "rss_after_mb", "growth_mb"} <= result["memory"]["app"].keys()
    assert result["cold_start"]["app_readyz_s"] > 0
    assert result["metrics"]["with_functions"]["median_ms"] > 0
    assert set(result["sync"]["sizes"]) == {"10", "100", "500"}
    assert result["events"]["rps"] > 0
    for target in result["targets"].values():
        assert {"target", "value", "met"} <= target.keys()
    # Quick mode is the one meant for every test run: keep it short (generous bound for a busy machine).
    assert elapsed < 180, f"make bench QUICK=1 took {elapsed:.0f} s"


def test_readme_figures_match_the_reference_run() -> None:
    """benchmarks/README.md's table is the one generated from the committed reference results file."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.readme_figures", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
