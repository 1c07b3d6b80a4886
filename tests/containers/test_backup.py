"""`make backup` and `make restore` on the default stack: run workflows, back up, wipe everything
(`make down VOLUMES=1`), `make up` on empty volumes, restore, and the server's run history (its REST API) and
the app's ledger rows are back."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts import e2e
from tests.containers.engine import log, run_cmd
from tests.containers.stack import Stack, send_and_complete, server_get
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("containers")]

LEDGER = "SELECT run_id, step, kind FROM side_effects ORDER BY run_id, step"


def ledger(stack: Stack) -> list[str]:
    rows = stack.compose("exec", "-T", "db", "psql", "-U", "app", "-d", "app", "-Atc", LEDGER).stdout
    return rows.split()


def reserve_item(stack: Stack) -> str:
    """One run of the ledger-writing workflow (`shop/order.item.reserve`), Completed: its run id."""
    data = json.dumps({"order_id": "o-backup", "sku": "sku-1", "qty": 2})
    cmd = [sys.executable, str(ROOT / "scripts" / "send_event.py"), "shop/order.item.reserve", data]
    sent = run_cmd(cmd, env={**stack.env, "ENV_FILE": str(stack.env_file)}, cwd=ROOT)
    (event_id,) = sent.stdout.split()
    run = e2e.wait_for_run(event_id, stack.signing_key, server=stack.url("inngest"), timeout=60)
    return str(run["run_id"])


def test_backup_wipe_up_restore_brings_back_runs_and_ledger(make_stack: Callable[..., Stack], tmp_path: Path) -> None:
    stack = make_stack()
    proc, _ = stack.up()
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}\n{stack.diagnostics()}"
    smoke, output = send_and_complete(stack)
    assert output == "Hello", smoke
    reserved = reserve_item(stack)
    rows = ledger(stack)
    assert any(row.startswith(f"{reserved}|reserve|") for row in rows), rows

    started = time.monotonic()
    backup = stack.make("backup", f"BACKUP_DIR={tmp_path}")
    stack.engine.timings["make backup"] = time.monotonic() - started
    assert backup.returncode == 0, backup.stdout + backup.stderr
    (taken,) = tmp_path.iterdir()
    assert f"backup written to {taken}" in backup.stdout
    assert sorted(p.name for p in taken.iterdir()) == ["app-db.dump", "inngest-data.tar"]
    # The server is back after the backup: healthy and still serving the run.
    assert stack.services()["inngest"]["Health"] == "healthy"
    assert server_get(stack, f"/v1/runs/{smoke['run_id']}")["data"]["status"] == "Completed"

    wipe = stack.make("down", "VOLUMES=1")
    assert wipe.returncode == 0, wipe.stderr
    again, _ = stack.up()
    assert again.returncode == 0, f"{again.stdout[-2000:]}\n{again.stderr[-3000:]}\n{stack.diagnostics()}"
    # Really empty: the new server does not know the run, the new database has no ledger rows.
    assert ledger(stack) == []

    started = time.monotonic()
    restored = stack.make("restore", f"BACKUP={taken}")
    stack.engine.timings["make restore"] = time.monotonic() - started
    log(f"make restore: exit {restored.returncode} in {stack.engine.timings['make restore']:.1f} s")
    assert restored.returncode == 0, f"{restored.stdout[-2000:]}\n{restored.stderr[-3000:]}\n{stack.diagnostics()}"
    assert "stack up and synced" in restored.stdout, restored.stdout
    run = server_get(stack, f"/v1/runs/{smoke['run_id']}")["data"]
    assert (run["status"], run["output"]) == ("Completed", "Hello"), run
    assert server_get(stack, f"/v1/runs/{reserved}")["data"]["status"] == "Completed"
    assert ledger(stack) == rows
    # The restored stack keeps working.
    _, output = send_and_complete(stack)
    assert output == "Hello"


def test_restore_from_a_missing_dir_is_one_line_and_changes_nothing(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = make_stack()
    proc = stack.make("restore", f"BACKUP={tmp_path / 'nope'}")
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("make: ***")]
    assert lines == [f"make restore: {tmp_path / 'nope'} is not a directory: pass BACKUP=<dir> written by make backup"]
