"""`make backup` / `make restore` refuse bad input with one line and a non-zero exit, before touching the stack
(the real round trip runs in tests/containers/test_backup.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.compose.compose_support import ROOT
from tests.compose.test_compose_make import run_make


def own_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if not line.startswith("make: ***")]


def touched_the_stack(calls: list[str]) -> bool:
    return any(" version" not in f" {c}" for c in calls)


def test_restore_from_a_missing_dir(tmp_path: Path) -> None:
    proc, calls = run_make(tmp_path, "restore", f"BACKUP={tmp_path / 'nope'}")
    assert proc.returncode != 0
    hint = "pass BACKUP=<dir> written by make backup"
    assert own_lines(proc) == [f"make restore: {tmp_path / 'nope'} is not a directory: {hint}"]
    assert not touched_the_stack(calls), calls


@pytest.mark.parametrize(("mode", "lacks"), [("", "app-db.dump, inngest-data.tar"), ("cloud", "app-db.dump")])
def test_restore_from_a_dir_that_is_no_backup(tmp_path: Path, mode: str, lacks: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc, calls = run_make(tmp_path, "restore", f"BACKUP={empty}", *([f"MODE={mode}"] if mode else []))
    assert proc.returncode != 0
    assert own_lines(proc) == [f"make restore: {empty} is not a backup of this stack: it lacks {lacks}"]
    assert not touched_the_stack(calls), calls


def test_restore_without_a_dir(tmp_path: Path) -> None:
    proc, _ = run_make(tmp_path, "restore")
    assert proc.returncode != 0 and own_lines(proc) == ["make restore: set BACKUP=<dir>"]


@pytest.mark.parametrize(("mode", "says"), [("ha", "docs/operations.md#backup-and-restore"), ("dev", "in memory")])
@pytest.mark.parametrize("target", ["backup", "restore"])
def test_modes_without_a_local_backup_say_what_to_do(tmp_path: Path, target: str, mode: str, says: str) -> None:
    proc, calls = run_make(tmp_path, target, f"MODE={mode}", f"BACKUP={tmp_path}")
    lines = own_lines(proc)
    assert proc.returncode != 0 and len(lines) == 1 and says in lines[0], proc.stderr
    assert not touched_the_stack(calls), calls


def test_backup_without_a_running_db_says_so(tmp_path: Path) -> None:
    """The stand-in compose lists no running `db`: nothing is written, one line says to run make up."""
    proc, _ = run_make(tmp_path, "backup", f"BACKUP_DIR={tmp_path / 'backups'}")
    assert proc.returncode != 0
    reason = "the app's database (service db) is not running: start the stack with make up first"
    assert own_lines(proc) == [f"make backup: {reason}"]
    assert not (tmp_path / "backups").exists()


def test_backups_are_git_ignored() -> None:
    if not shutil.which("git"):
        pytest.skip("git not installed")
    proc = subprocess.run(["git", "check-ignore", "-q", "backups/20260101T000000Z/app-db.dump"], cwd=ROOT)
    assert proc.returncode == 0
