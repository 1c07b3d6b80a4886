"""The real containers under a real (private) Docker engine: see conftest.py for the engine and images."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("containers")]


def test_base_image_runs_python_and_trusts_the_hosts_index(engine, base_image):
    out = engine.run(
        "run", "--rm", "--network", "host", base_image,
        "python3", "-c",
        "import ssl, sys, venv; print(sys.version_info[:2]); print(ssl.get_default_verify_paths().cafile)",
    ).stdout.split("\n")  # fmt: skip
    assert out[0] == "(3, 11)"
    # pip in a build step trusts what the host trusts and reaches the same index.
    pip = engine.run(
        "run", "--rm", "--network", "host", base_image,
        "python3", "-m", "pip", "download", "--no-deps", "--dest", "/tmp/w", "--quiet", "idna==3.10",
        timeout=120,
    )  # fmt: skip
    assert pip.returncode == 0
