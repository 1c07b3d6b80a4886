"""Configuration footguns refused at start, and the secrets file kept private."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, free_port
from tests.support.process import clean_env


def test_metrics_dir_overlapping_the_ledger_is_refused_at_start(tmp_path: Path) -> None:
    ledger = tmp_path / "state" / "side-effects.sqlite3"
    ledger.parent.mkdir()
    ledger.write_bytes(b"precious")
    env = {
        **clean_env(),
        "INNGEST_MODE": "dev",
        "WEB_CONCURRENCY": "2",
        "SIDE_EFFECTS_DB": str(ledger),
        "PROMETHEUS_MULTIPROC_DIR": str(ledger.parent),
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
    }
    # Its own process group: a build without the check would start workers, which must not outlive the test.
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        stderr = b"still running after 30 s"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, stderr.decode()
    assert b"PROMETHEUS_MULTIPROC_DIR" in stderr and b"SIDE_EFFECTS_DB" in stderr
    assert ledger.read_bytes() == b"precious"


def test_make_env_makes_an_existing_env_private_before_adding_secrets(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("INNGEST_SIGNING_KEY=abcd\n")
    target.chmod(0o644)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_env.py"), str(target)], check=True, timeout=30)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "EVENT_API_KEYS=" in target.read_text()
