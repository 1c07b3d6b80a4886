"""What an operator reads: sync's progress while it waits, doctor's one root cause with its fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, free_port

from .app_process import app_env, running_app


def test_sync_prints_one_progress_line_per_attempt(tmp_path: Path) -> None:
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_SYNC_TIMEOUT="3")
    # Nothing listens: neither the app nor the server.
    proc = subprocess.run([sys.executable, "-m", "app", "sync"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    progress = [line for line in lines if line.startswith("sync: waiting")]
    pattern = re.compile(
        rf"sync: waiting for the app at http://127\.0\.0\.1:{port}/api/inngest \(attempt (\d+), ([\d.]+)s of 3s\)"
    )
    matches = [pattern.fullmatch(line) for line in progress]
    assert len(progress) >= 2 and all(matches), lines
    attempts = [int(m.group(1)) for m in matches if m]
    elapsed = [float(m.group(2)) for m in matches if m]
    assert attempts == list(range(1, len(attempts) + 1))
    assert elapsed == sorted(elapsed) and elapsed[-1] <= 3.5
    assert lines[-1].startswith("sync failed (unreachable)")


def test_doctor_reports_an_unreachable_server_once_and_skips_what_depends_on_it(tmp_path: Path) -> None:
    port = free_port()
    env = app_env(port, tmp_path, INNGEST_BASE_URL=f"http://127.0.0.1:{free_port()}")
    with running_app(env, tmp_path / "app.log"):
        proc = subprocess.run(
            [sys.executable, "-m", "app", "doctor"], env=env, capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    fails = [line for line in lines if line.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].startswith("FAIL server unreachable"), lines
    assert all(" -> fix: " in line for line in fails)
    assert [line.split(":")[0] for line in lines if line.startswith("skip")] == [
        "skip kind",
        "skip keys",
        "skip registered",
    ]
    assert any(line.startswith("ok   serve endpoint") for line in lines)  # independent of the server


def test_make_run_points_the_app_at_the_dev_server_of_make_dev_server() -> None:
    def dry(target: str) -> str:
        proc = subprocess.run(
            ["make", "--no-print-directory", "-n", target, "DEV_SERVER_PORT=9300", "PORT=9123"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "PORT=9123 INNGEST_MODE=dev INNGEST_BASE_URL=http://127.0.0.1:9300 " in dry("run")
    server = dry("dev-server")
    assert "scripts/inngest_bin.py" in server  # the real, pinned binary
    assert " dev --host 127.0.0.1 --port 9300 " in server and "--sdk-url http://127.0.0.1:9123/api/inngest" in server
