"""The locally built images: the debootstrap base, the app image's footprint, and the server image built from
the real binary."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.containers.engine import Engine
from tests.containers.images import APP_IMAGE
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("containers")]

MB = 1_000_000  # docker's MB
# Regression bounds for the app image built on the debootstrap base (ct-base), ~10% over what was measured
# (docs/performance.md, "Startup and footprint"): the layers the Dockerfile adds measured 91.2 MB (119.1 MB
# with pip and setuptools in the venv and uvicorn[standard]'s extras), the whole image 236.4 MB (264.2 MB).
# The first is the Dockerfile's own regression guard; the second also moves with the base's packages.
APP_ADDED_MAX = 100 * MB
APP_IMAGE_MAX = 260 * MB
# Modules the runtime venv must not have: installers, and uvicorn[standard]'s extras the server does not run on.
NOT_IN_VENV = ("pip", "setuptools", "wheel", "pkg_resources", "_distutils_hack", "websockets", "watchfiles", "yaml")
SERVER_RUNS_ON = ("app", "uvicorn", "uvloop", "httptools")


def pinned_server_image() -> str:
    """The tag docker-compose.yml pins once, in `x-inngest-image`."""
    image: str = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-inngest-image"]
    return image


def test_base_image_runs_python_and_trusts_the_hosts_index(engine: Engine, base_image: str) -> None:
    out = engine.run(
        "run", "--rm", "--network", "host", base_image,
        "python3", "-c", "import ssl, sys, venv; print(sys.version_info[:2])",
    ).stdout.split("\n")  # fmt: skip
    assert out[0] == "(3, 11)"
    # pip in a build step trusts what the host trusts and reaches the same index.
    engine.run(
        "run", "--rm", "--network", "host", base_image,
        "python3", "-m", "pip", "download", "--no-deps", "--dest", "/tmp/w", "--quiet", "idna==3.10",
        timeout=120,
    )  # fmt: skip


def test_server_image_is_the_pinned_binary_laid_out_like_upstream(engine: Engine, images: set[str]) -> None:
    tag = pinned_server_image()
    assert tag in images, f"{tag} is not referenced by the rendered compose projects: {sorted(images)}"
    config = engine.inspect(tag)["Config"]
    assert config["Cmd"] == ["inngest"]
    assert not config.get("Entrypoint")
    version = engine.run("run", "--rm", "--network", "none", tag, "inngest", "--version").stdout
    assert re.search(r"\b" + re.escape(tag.rsplit(":v", 1)[1]) + r"\b", version), version
    # Upstream's layout: the binary at /bin/inngest, CA certificates and time zones installed.
    probe = "test -x /bin/inngest && test -s /etc/ssl/certs/ca-certificates.crt && test -f /usr/share/zoneinfo/UTC"
    engine.run("run", "--rm", "--network", "none", tag, "sh", "-c", probe)


def image_size(engine: Engine, ref: str) -> int:
    return int(engine.run("image", "inspect", "--format", "{{.Size}}", ref).stdout)


def venv_footprint(engine: Engine, ref: str, *modules: str) -> dict[str, Any]:
    """tests/containers/venv_probe.py run by the image's venv interpreter (no network, the image's own user)."""
    probe = (ROOT / "tests" / "containers" / "venv_probe.py").read_text()
    cmd = ["run", "--rm", "--network", "none", ref, "/opt/venv/bin/python", "-c", probe, *modules]
    out = engine.run(*cmd, timeout=120).stdout
    footprint: dict[str, Any] = json.loads(out)
    return footprint


def where_the_bytes_are(size: int, base: int, venv: dict[str, Any]) -> str:
    lines = [f"image {size / MB:.1f} MB: base {base / MB:.1f} MB + {(size - base) / MB:.1f} MB added"]
    kinds = ", ".join(f"{kind} {n / MB:.1f}" for kind, n in venv["kinds"].items())
    lines.append(f"venv {venv['total'] / MB:.1f} MB: {kinds}")
    lines += [f"  {n / MB:6.2f} MB {name}" for name, n in list(venv["by_dist"].items())[:15]]
    lines += [f"  {n / MB:6.2f} MB {path}" for n, path in venv["largest_extensions"]]
    return "\n".join(lines)


def test_app_image_has_no_installers_in_its_venv_and_stays_under_its_size_bounds(
    engine: Engine, base_image: str, images: set[str]
) -> None:
    assert APP_IMAGE in images
    venv = venv_footprint(engine, APP_IMAGE, *NOT_IN_VENV, *SERVER_RUNS_ON)
    size, base = image_size(engine, APP_IMAGE), image_size(engine, base_image)
    report = where_the_bytes_are(size, base, venv)
    print(report)  # shown with -s: where the bytes are, on every run
    # What the server runs on is there; what only installs or what it does not use is not.
    assert set(SERVER_RUNS_ON) <= set(venv["importable"]), venv["importable"]
    assert not set(NOT_IN_VENV) & set(venv["importable"]), sorted(set(NOT_IN_VENV) & set(venv["importable"]))
    dists = {name.lower() for name in venv["by_dist"]}
    assert not dists & {"pip", "setuptools", "wheel", "websockets", "watchfiles", "pyyaml"}, sorted(dists)
    assert not [name for name in venv["bin"] if name.startswith(("pip", "easy_install", "wheel"))], venv["bin"]
    assert size - base <= APP_ADDED_MAX, report
    assert size <= APP_IMAGE_MAX, report
