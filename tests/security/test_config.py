"""Configuration footguns refused at start, and the secrets file kept private."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_metrics_dir_overlapping_the_ledger_is_refused_at_start(tmp_path: Path) -> None:
    ledger = tmp_path / "state" / "side-effects.sqlite3"
    ledger.parent.mkdir()
    ledger.write_bytes(b"precious")
    env = {
        "PATH": os.environ["PATH"],
        "INNGEST_MODE": "dev",
        "WEB_CONCURRENCY": "2",
        "SIDE_EFFECTS_DB": str(ledger),
        "PROMETHEUS_MULTIPROC_DIR": str(ledger.parent),
        "PORT": "1",  # never bound: the start stops at the settings
    }
    proc = subprocess.run(
        [sys.executable, "-m", "app"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "PROMETHEUS_MULTIPROC_DIR" in proc.stderr and "SIDE_EFFECTS_DB" in proc.stderr
    assert ledger.read_bytes() == b"precious"


def test_make_env_makes_an_existing_env_private_before_adding_secrets(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("INNGEST_SIGNING_KEY=abcd\n")
    target.chmod(0o644)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_env.py"), str(target)], check=True, timeout=30)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "EVENT_API_KEYS=" in target.read_text()
