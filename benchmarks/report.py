"""The run's report: the machine it ran on, and the figures as rows for the terminal and for the README."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.config import LOAD_CPU, PACKAGES, SERVER_CPU
from benchmarks.targets import Result, cell
from tests.support import ROOT

Row = tuple[str, str, str, str]
HEADER: Row = ("metric", "baseline", "app", "target")


def machine_info(pin: bool) -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    mem_total = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_total = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "memory_mb": mem_total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version[0] if wrk_version else None,
        "pinning": {"servers": SERVER_CPU, "load": LOAD_CPU} if pin else None,
        "git_commit": commit.stdout.strip() or None,
        "packages": versions,
    }


def _throughput(result: Result) -> list[Row]:
    tp = result["throughput"]
    return [
        (
            "step invocations req/s (median)",
            f"{tp['baseline']['rps']:.0f}",
            f"{tp['app']['rps']:.0f}",
            f"x{tp['ratio_median']:.2f}, rounds {tp['ratio_min']:.2f}-{tp['ratio_max']:.2f}; "
            + cell("throughput_ratio", result),
        ),
        (
            "CPU µs per invocation (median)",
            f"{tp['baseline']['cpu_us_per_request']:.0f}",
            f"{tp['app']['cpu_us_per_request']:.0f}",
            f"baseline/app x{tp['cpu_ratio_median']:.2f}",
        ),
        ("p50 latency ms", f"{tp['baseline']['p50_ms']:.2f}", f"{tp['app']['p50_ms']:.2f}", ""),
        (
            "p99 latency ms (median of rounds)",
            f"{tp['baseline']['p99_ms']:.2f}",
            f"{tp['app']['p99_ms']:.2f}",
            f"app/baseline per round x{tp['p99_ratio_median']:.2f}, rounds {tp['p99_ratio_min']:.2f}-"
            f"{tp['p99_ratio_max']:.2f}; " + cell("p99_not_worse", result),
        ),
    ]


def _new_connections(result: Result) -> list[Row]:
    tp = result.get("throughput_new_connections")
    if not tp:
        return []
    return [
        (
            "step invocations req/s, a new connection per call (as the server calls)",
            f"{tp['baseline']['rps']:.0f}",
            f"{tp['app']['rps']:.0f}",
            f"x{tp['ratio_median']:.2f}, rounds {tp['ratio_min']:.2f}-{tp['ratio_max']:.2f}; p99 ratio "
            f"x{tp['p99_ratio_median']:.2f}",
        ),
        (
            "CPU µs per invocation, a new connection per call",
            f"{tp['baseline']['cpu_us_per_request']:.0f}",
            f"{tp['app']['cpu_us_per_request']:.0f}",
            f"baseline/app x{tp['cpu_ratio_median']:.2f}",
        ),
    ]


def _end_to_end(result: Result) -> list[Row]:
    e2e = result["end_to_end"]
    base, app = e2e["baseline"], e2e["app"]
    spread, p99 = e2e["ratio_spread"], e2e["p99_ratio"]
    rounds = len(e2e["rounds"])
    rates = sorted(r["app"]["steady"]["rate_per_second"] for r in e2e["rounds"])
    rate = f"{rates[0]:g}/s" if rates[0] == rates[-1] else f"{rates[0]:g}-{rates[-1]:g}/s"
    return [
        (
            f"e2e completed runs/s ({e2e['events']:,}-event burst, 3 steps, median of {rounds})",
            f"{base['runs_per_second']:.2f}",
            f"{app['runs_per_second']:.2f}",
            f"x{spread['median']:.3f}, rounds {spread['min']:.3f}-{spread['max']:.3f}; "
            + cell("e2e_runs_ratio", result),
        ),
        (
            f"e2e event -> Completed p50 ms (at {rate})",
            f"{base['latency_ms']['p50']:.0f}",
            f"{app['latency_ms']['p50']:.0f}",
            "",
        ),
        (
            f"e2e event -> Completed p99 ms (at {rate})",
            f"{base['latency_ms']['p99']:.0f}",
            f"{app['latency_ms']['p99']:.0f}",
            f"x{p99['median']:.3f}, rounds {p99['min']:.3f}-{p99['max']:.3f}; " + cell("e2e_p99_not_worse", result),
        ),
        (
            "e2e CPU ms per run: Inngest server / SDK process",
            f"{base['server_cpu_ms_per_run']:.1f} / {base['sdk_cpu_ms_per_run']:.1f}",
            f"{app['server_cpu_ms_per_run']:.1f} / {app['sdk_cpu_ms_per_run']:.1f}",
            f"bound by the {e2e['bound_by']['which']}",
        ),
    ]


def _startup_and_memory(result: Result) -> list[Row]:
    out: list[Row] = []
    if cs := result.get("cold_start"):
        out.append(
            (
                "cold start s (exec -> ready, median)",
                f"{cs['baseline_first_response_s']:.3f}",
                f"{cs['app_readyz_s']:.3f}",
                cell("cold_start", result),
            )
        )
    if mem := result.get("memory"):
        out += [
            ("idle RSS MB", f"{mem['baseline']['idle_rss_mb']:.1f}", f"{mem['app']['idle_rss_mb']:.1f}", ""),
            (
                f"RSS after {mem['invocations']:,} invocations MB",
                f"{mem['baseline']['rss_after_mb']:.1f}",
                f"{mem['app']['rss_after_mb']:.1f}",
                "",
            ),
            (
                "RSS growth MB",
                f"{mem['baseline']['growth_mb']:.1f}",
                f"{mem['app']['growth_mb']:.1f}",
                "from the fresh process: first-use allocations included",
            ),
            (
                f"RSS growth after the first {mem['first_calls']:,} calls MB",
                f"{mem['baseline']['growth_after_first_calls_mb']:.1f}",
                f"{mem['app']['growth_after_first_calls_mb']:.1f}",
                "after warm-up; " + cell("rss_growth", result),
            ),
        ]
        if "rss_after_all_mb" in mem["app"]:
            out.append(
                (
                    f"app RSS after {mem['app']['calls_before_after_all']:,} calls MB",
                    "-",
                    f"{mem['app']['rss_after_all_mb']:.1f}",
                    "steady state (warm-up excluded)",
                )
            )
    return out


def _app_only(result: Result) -> list[Row]:
    out: list[Row] = []
    if m := result.get("metrics"):
        out.append(
            (
                f"/metrics ms ({m['functions_registered']} functions, median)",
                "-",
                f"{m['with_functions']['median_ms']:.2f}",
                cell("metrics_latency", result),
            )
        )
    if sync := result.get("sync"):
        for size, data in sync["sizes"].items():
            out.append(
                (
                    f"sync {size} functions: PUT ms / payload build ms",
                    "-",
                    f"{data['min_ms']:.1f} / {data['build_min_ms']:.2f}",
                    f"build {data['build_per_function_us']:.0f} µs per function",
                )
            )
        out.append(
            (
                "sync marginal cost growth (build / PUT)",
                "-",
                f"x{sync['marginal_growth']} / x{sync['put_marginal_growth']}",
                cell("sync_linear", result),
            )
        )
    if ev := result.get("events"):
        out.append(("/api/events req/s to the loopback sink", "-", f"{ev['rps']:.0f}", f"p99 {ev['p99_ms']:.1f} ms"))
    return out


def rows(result: Result) -> list[Row]:
    """The table's rows; the sections of phases that did not run (--phases) are left out."""
    out: list[Row] = []
    if "throughput" in result:
        out += _throughput(result) + _new_connections(result)
    if "end_to_end" in result:
        out += _end_to_end(result)
    return out + _startup_and_memory(result) + _app_only(result)


def text_table(result: Result) -> str:
    table = rows(result)
    widths = [max(len(r[i]) for r in [HEADER, *table]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)), "  ".join("-" * w for w in widths)]
    for row in table:
        cells = (c.ljust(w) if i in (0, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def markdown_table(result: Result) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "| --- | ---: | ---: | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(result)]
    return "\n".join(lines)
