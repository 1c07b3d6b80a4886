"""scripts/inngest_bin.py: the version comes from docker-compose.yml, a wrong INNGEST_BIN is refused in one
line, and the binary the tests run reports the pinned version. Nothing is built here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT
from tests.support.inngest import inngest_binary

SCRIPT = ROOT / "scripts" / "inngest_bin.py"


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def pinned() -> str:
    match = re.search(r"^x-inngest-image:.*inngest/inngest:v(\S+)$", (ROOT / "docker-compose.yml").read_text(), re.M)
    assert match, "docker-compose.yml pins no inngest image"
    return match.group(1)


def test_pinned_version_is_read_from_docker_compose() -> None:
    proc = run_script("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == pinned(), proc


def test_inngest_bin_with_another_version_is_refused_in_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "inngest"
    fake.write_text("#!/bin/sh\necho 'inngest version 0.0.1'\n")
    fake.chmod(0o755)
    proc = run_script(env={"PATH": "/usr/bin:/bin", "INNGEST_BIN": str(fake)})
    assert proc.returncode == 3 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert f"INNGEST_BIN={fake} reports version 0.0.1" in line and f"pins {pinned()}" in line, line


def test_the_binary_the_tests_run_reports_the_pinned_version() -> None:
    out = subprocess.run([inngest_binary(), "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert pinned() in out.stdout, out.stdout
