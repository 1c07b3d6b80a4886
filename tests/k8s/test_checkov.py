"""checkov: zero failed checks on every rendered overlay and on the root Dockerfile."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, require_tool
from tests.k8s.conftest import OVERLAYS, Doc

CONFIG = ROOT / ".checkov.yaml"
VENV_CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def checkov() -> str:
    if VENV_CHECKOV.exists():
        return str(VENV_CHECKOV)
    return require_tool("checkov", "run `make checkov-venv` (its own virtualenv: .venv-checkov)")


def run_checkov(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [checkov(), "--config-file", str(CONFIG), "-o", "json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert not failed and result.returncode == 0, failed or result.stderr
    summary = {k: sum(r["summary"][k] for r in reports) for k in ("passed", "failed")}
    assert summary["passed"] > 0
    return summary


@pytest.mark.slow
def test_rendered_overlays_pass_checkov(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    for name in OVERLAYS:
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(rendered[name]))
    summary = run_checkov("--framework", "kubernetes", "-d", str(tmp_path))
    assert summary["failed"] == 0


@pytest.mark.slow
def test_dockerfile_passes_checkov() -> None:
    dockerfile = ROOT / "Dockerfile"
    if not dockerfile.exists():
        pytest.fail("root Dockerfile missing")
    summary = run_checkov("--framework", "dockerfile", "-f", str(dockerfile))
    assert summary["failed"] == 0


def test_every_skip_has_a_one_line_reason() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    skips = config.get("skip-check", [])
    lines = {m.group(1): m.group(2) for m in re.finditer(r"^\s*- (\S+)\s*#\s*(.+)$", CONFIG.read_text(), re.M)}
    for check in skips:
        assert len(lines.get(check, "")) > 20, f"{check}: needs a `# reason` on its line"


def test_base_image_arg_is_pinned_by_tag_and_digest() -> None:
    """What the CKV_DOCKER_7 skip relies on: checkov cannot resolve `FROM ${BASE_IMAGE}`."""
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert match, "Dockerfile: ARG BASE_IMAGE=<image>:<tag>@sha256:<digest> expected"
    image = match.group(1)
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image), image
    assert ":latest" not in image
