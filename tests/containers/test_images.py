"""The locally built images: the debootstrap base, and the server image built from the real binary."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.containers.engine import Engine
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("containers")]


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
