#!/usr/bin/env python3
"""`make backup` / `make restore`: the compose stack's state in one timestamped directory (stdlib only).

    python3 scripts/backup.py backup BACKUP_DIR     -> BACKUP_DIR/<UTC timestamp>/
    python3 scripts/backup.py restore DIR

The directory holds `inngest-data.tar` (the server's SQLite directory, taken with the server stopped so the
files are consistent) and `app-db.dump` (the app's database, `pg_dump -Fc`). Both are taken at the same
moment: a run the server retries after a restore must find the ledger records of the steps it completed.
COMPOSE (the make target's compose command) and MODE come from the environment. Restore leaves the server
and the app stopped; `make restore` then runs `make up`, which starts them and syncs again.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

SQLITE_DIR = "/var/lib/inngest"  # docker-compose.yml: INNGEST_SQLITE_DIR and the inngest-data volume
SERVER_ARCHIVE = "inngest-data.tar"
DB_DUMP = "app-db.dump"
# The app's database and user on `db` (docker-compose.yml); local socket connections need no password.
PG = ["-U", "app", "-d", "app"]
UNSUPPORTED = {
    "ha": "MODE=ha keeps the server's state in Postgres and Redis: back them up as "
    "docs/operations.md#backup-and-restore describes (Redis first, then pg_dump of both databases)",
    "dev": "MODE=dev runs `inngest dev`, whose state lives in memory: there is nothing to back up",
}


class Failed(Exception):
    """One line for the operator; exit 1."""


def compose_cmd(*args: str) -> list[str]:
    return [*shlex.split(os.environ.get("COMPOSE") or "scripts/compose.sh"), *args]


def compose(*args: str, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
    proc = subprocess.run(compose_cmd(*args), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise Failed(f"`{' '.join(args[:4])}` failed: {err[-1] if err else f'exit {proc.returncode}'}")


def has_server(mode: str) -> bool:
    return mode != "cloud"  # MODE=cloud: the server is Inngest Cloud, only the app's database is local


def require_db() -> None:
    """pg_dump/pg_restore run inside `db`: it must be up (a clear line instead of compose's own)."""
    proc = subprocess.run(compose_cmd("ps", "-q", "--status", "running", "db"), capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise Failed("the app's database (service db) is not running: start the stack with make up first")


def backup(root: Path, mode: str) -> Path:
    require_db()
    target = root / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    try:
        target.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise Failed(f"{target} already exists (two backups within one second): try again") from None
    except OSError as e:
        raise Failed(f"cannot create {target}: {e.strerror}") from None
    if has_server(mode):
        # Stopped first: no run moves while the database is dumped, and SQLite's files are at rest.
        compose("stop", "inngest")
    try:
        take(target, mode)
    except Failed:
        shutil.rmtree(target, ignore_errors=True)  # no half backup that a restore would accept
        raise
    finally:
        if has_server(mode):
            compose("up", "-d", "--no-deps", "--wait", "inngest")
    return target


def take(target: Path, mode: str) -> None:
    with (target / DB_DUMP).open("wb") as out:
        compose("exec", "-T", "db", "pg_dump", *PG, "-Fc", stdout=out)
    if has_server(mode):
        with (target / SERVER_ARCHIVE).open("wb") as out:
            compose("run", "--rm", "--no-deps", "-T", "--entrypoint", "tar", "inngest",
                    "-C", SQLITE_DIR, "-cf", "-", ".", stdout=out)  # fmt: skip


def restore(source: Path, mode: str) -> None:
    wanted = [DB_DUMP, SERVER_ARCHIVE] if has_server(mode) else [DB_DUMP]
    if not source.is_dir():
        raise Failed(f"{source} is not a directory: pass BACKUP=<dir> written by make backup")
    missing = [name for name in wanted if not (source / name).is_file()]
    if missing:
        raise Failed(f"{source} is not a backup of this stack: it lacks {', '.join(missing)}")
    require_db()
    # Nothing may run or write while the state is replaced; `make up` starts both again and re-syncs.
    compose("stop", *(["inngest", "app"] if has_server(mode) else ["app"]))
    with (source / DB_DUMP).open("rb") as dump:
        compose("exec", "-T", "db", "pg_restore", *PG, "--clean", "--if-exists", "--no-owner", stdin=dump)
    if has_server(mode):
        with (source / SERVER_ARCHIVE).open("rb") as archive:
            # The volume is emptied first: a file the backup did not have (a newer WAL) must not survive.
            compose("run", "--rm", "--no-deps", "-T", "--entrypoint", "sh", "inngest", "-c",
                    f'cd {SQLITE_DIR} && rm -rf -- * .[!.]* ..?* && tar -xf -', stdin=archive)  # fmt: skip


def main(argv: list[str]) -> int:
    usage = "usage: backup.py backup BACKUP_DIR | restore DIR"
    if len(argv) != 3 or argv[1] not in ("backup", "restore"):
        print(usage, file=sys.stderr)
        return 2
    action, path, mode = argv[1], argv[2], os.environ.get("MODE", "")
    if mode in UNSUPPORTED:
        print(f"make {action}: {UNSUPPORTED[mode]}", file=sys.stderr)
        return 2
    if not path:
        print(f"make {action}: set {'BACKUP_DIR' if action == 'backup' else 'BACKUP'}=<dir>", file=sys.stderr)
        return 2
    try:
        if action == "backup":
            print(f"backup written to {backup(Path(path), mode)}")
        else:
            restore(Path(path), mode)
            print(f"restored from {path}")
    except Failed as e:
        print(f"make {action}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
