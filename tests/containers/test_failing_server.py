"""A server that cannot start stops `make up` quickly, with the server's own reason on the terminal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.containers.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("containers")]


def test_a_bad_signing_key_fails_make_up_with_the_servers_error_line(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = make_stack()
    # Only the server gets the bad key (odd-length hex); the app keeps a valid one and turns healthy.
    fault = tmp_path / "bad-server-key.yml"
    fault.write_text("services:\n  inngest:\n    environment:\n      INNGEST_SIGNING_KEY: abc\n")
    stack.extra.append(fault)
    proc, took = stack.up()
    stack.engine.timings["make up failing server"] = took
    assert proc.returncode != 0, proc.stdout
    assert took < 60, f"make up took {took:.0f} s to give up"
    logs = stack.engine.run("logs", stack.container("inngest"))
    server_log = logs.stdout + logs.stderr
    errors = [line.strip() for line in server_log.splitlines() if "signing" in line.lower()]
    assert errors, server_log[-2000:]
    printed = proc.stdout + proc.stderr
    assert any(line in printed for line in errors), f"server said {errors}; make up printed:\n{printed[-3000:]}"
    assert "sync" not in stack.services()  # it never got as far as the sync job
