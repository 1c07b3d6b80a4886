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
from tests.support.inngest import inngest_binary

TOP_LEVEL = {
    "schema_version",
    "generated_at",
    "quick",
    "machine",
    "config",
    "checks",
    "throughput",
    "throughput_new_connections",
    "memory",
    "events",
    "metrics",
    "sync",
    "cold_start",
    "end_to_end",
    "targets",
    "elapsed_s",
}
PER_SERVER = {"rps", "p50_ms", "p90_ms", "p99_ms"}


@pytest.mark.slow
def test_make_bench_quick(tmp_path: Path) -> None:
    require_tool("wrk", "apt-get install wrk (Debian package)")
    require_tool("make", "apt-get install make")
    inngest_binary()  # the end-to-end phase runs the real server: skip (or fail under REQUIRE_ALL) without it
    out = tmp_path / "bench.json"
    started = time.monotonic()
    proc = subprocess.run(
        ["make", "--no-print-directory", "bench", "QUICK=1", f"BENCH_OUT={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
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
    reconnecting = result["throughput_new_connections"]  # the same call, one connection each, as the server calls
    assert all(reconnecting[server]["rps"] > 0 for server in ("baseline", "app"))
    assert len(reconnecting["rounds"]) >= 2
    assert {"idle_rss_mb", "rss_after_mb", "growth_mb"} <= result["memory"]["app"].keys()
    assert result["cold_start"]["app_readyz_s"] > 0
    assert result["metrics"]["with_functions"]["median_ms"] > 0
    assert set(result["sync"]["sizes"]) == {"10", "100", "500"}
    assert result["events"]["rps"] > 0
    e2e = result["end_to_end"]  # through the real server, for both sides
    for side in ("app", "baseline"):
        assert e2e[side]["runs_per_second"] > 0
        assert 0 < e2e[side]["latency_ms"]["p50"] <= e2e[side]["latency_ms"]["p99"]
        for entry in e2e["rounds"]:
            assert entry[side]["burst"]["not_completed"] == 0 and entry[side]["steady"]["not_completed"] == 0
    assert e2e["ratio"] > 0 and e2e["rounds"][0]["app"]["burst"]["events"] == 200
    cpus = e2e["server"]["cpus"]  # one-core layout: each side's server and SDK on one core, the driver apart
    assert e2e["server"]["layout"] == "one-core"
    assert cpus is None or (cpus["inngest_servers"] == cpus["sdks"] != cpus["driver"])
    for target in result["targets"].values():
        assert {"target", "value", "met"} <= target.keys()
    # Quick mode is the one meant for every test run: keep it short (generous bound for a busy machine; the
    # end-to-end phase alone is ~90 s here, bound by the Inngest server's pace of ~5 runs/s under load).
    assert elapsed < 300, f"make bench QUICK=1 took {elapsed:.0f} s"


def test_readme_figures_match_the_reference_run() -> None:
    """benchmarks/README.md's table is the one generated from the committed reference results file."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.readme_figures", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
