"""A throwaway PostgreSQL server (Debian's `postgresql` binaries) for the tests.

Its own data directory and a free loopback port, so it neither needs nor disturbs a packaged cluster on
5432. initdb and postgres refuse to run as root, so under root they run as the `postgres` system user the
package creates. TCP connections need a password (scram-sha-256); the superuser's is random per server.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.process import TempDirServer, running, stop_process
from tests.support.tools import unavailable

HINT = "apt-get install postgresql"
SUPERUSER = "postgres"


def postgres_bindir() -> Path:
    """The newest Debian install (/usr/lib/postgresql/<major>/bin), else wherever initdb is on PATH."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    unavailable(f"PostgreSQL (initdb, postgres) not found: {HINT}")


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class PostgresServer(TempDirServer):
    """One postmaster on 127.0.0.1:`port`. `restart()` and a start after `kill()` keep the data directory,
    as a container restart keeps its volume."""

    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    settings: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    _tmp: Path | None = None
    log_name = "postgres.log"

    @property
    def data_dir(self) -> Path:
        assert self._tmp is not None, "start() first"
        return self._tmp / "data"

    def _as_owner(self) -> dict[str, Any]:
        """Popen options that drop root to the `postgres` user (the server refuses to run as root)."""
        if os.geteuid() != 0:
            return {}
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError:
            unavailable(f"no `postgres` system user to run PostgreSQL as: {HINT}")
        return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}

    def _init(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="pg-test-"))
        owner = self._as_owner()
        if owner:
            os.chown(self._tmp, owner["user"], owner["group"])
        pwfile = self._tmp / "pwfile"
        pwfile.write_text(self.password + "\n")
        if owner:
            os.chown(pwfile, owner["user"], owner["group"])
        pwfile.chmod(0o600)
        try:
            subprocess.run(
                [
                    str(postgres_bindir() / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth-local",
                    "peer",
                    "--auth-host",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                cwd=self._tmp,
                **owner,
            )
        except subprocess.CalledProcessError as exc:
            raise AssertionError(f"initdb failed: {exc.stderr.decode(errors='replace')}") from exc
        finally:
            pwfile.unlink()

    def start(self, timeout: float = 60) -> PostgresServer:
        if self._tmp is None:
            self._init()
        assert self._tmp is not None
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            # The socket lives in the private temp dir, never in the packaged cluster's /var/run/postgresql.
            "unix_socket_directories": str(self._tmp),
            "max_connections": "300",
            # A process kill keeps the OS page cache, so fsync buys the tests nothing but time.
            "fsync": "off",
            **self.settings,
        }
        args = [arg for key, value in options.items() for arg in ("-c", f"{key}={value}")]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(postgres_bindir() / "postgres"), "-D", str(self.data_dir), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._tmp,
                # Its own process group, so kill() takes the backends down with the postmaster, as a
                # container's death would.
                start_new_session=True,
                **self._as_owner(),
            )
        wait_until(self._ready, timeout, interval=0.1, what=f"PostgreSQL on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"postgres exited with {self.proc.returncode}:\n{self.log_tail()}")
        probe = subprocess.run(
            [str(postgres_bindir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
        )
        return probe.returncode == 0

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT: abort transactions, checkpoint, exit)."""
        stop_process(self.proc, signal.SIGINT, timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends: the next start runs crash recovery."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP the postmaster and its backends: a hung database (connections open, no answers)."""
        assert self.proc is not None and self.proc.poll() is None, "start() first"
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGCONT)

    def dsn(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        """`postgresql://user:password@127.0.0.1:port/database`; the superuser's password is filled in."""
        if password is None and user == SUPERUSER:  # "" asks for no password at all
            password = self.password
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def execute(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` as the superuser with psql; returns the unaligned, tuples-only output."""
        proc = subprocess.run(
            [
                str(postgres_bindir() / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--tuples-only",
                "--no-align",
                "--set",
                "ON_ERROR_STOP=1",
                "--dbname",
                self.dsn(database, password=""),
                "--command",
                sql,
            ],
            # The password through the environment, not the command line other processes can read.
            env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"psql failed ({proc.returncode}) on {sql!r}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def create_user(self, name: str, password: str) -> None:
        self.execute(f"CREATE ROLE {_ident(name)} LOGIN PASSWORD {_literal(password)}")

    def create_database(self, name: str, owner: str | None = None) -> None:
        self.execute(f"CREATE DATABASE {_ident(name)}" + (f" OWNER {_ident(owner)}" if owner else ""))


def postgres_server(**options: Any) -> contextlib.AbstractContextManager[PostgresServer]:
    """A started server, stopped and its data directory removed afterwards."""
    return running(PostgresServer(**options))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One server for the session; give each test its own database (`create_database`)."""
    with postgres_server() as server:
        yield server
