"""A throwaway Redis server (Debian's `redis-server`) for the tests.

Its own working directory and a free loopback port, so it neither needs nor disturbs a packaged service
on 6379. Snapshots and the append-only file are off: what the tests keep across a restart lives in
PostgreSQL, and a Redis restart here means its data is gone, as with an ephemeral cache pod.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
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
from tests.support.tools import require_tool

HINT = "apt-get install redis-server"


@dataclass
class RedisServer(TempDirServer):
    """One redis-server on 127.0.0.1:`port`, with `password` (requirepass) when given."""

    port: int = field(default_factory=free_port)
    password: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    _tmp: Path | None = None
    log_name = "redis.log"

    def start(self, timeout: float = 30) -> RedisServer:
        binary = require_tool("redis-server", HINT)
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="redis-test-"))
        config = self._tmp / "redis.conf"
        lines = [f"bind 127.0.0.1\nport {self.port}\ndir {self._tmp}\n", 'save ""\nappendonly no\n']
        if self.password:
            # In the 0600 config file, not on the command line other processes can read.
            lines.append(f"requirepass {self.password}\n")
        config.touch(mode=0o600)
        config.write_text("".join(lines))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([binary, str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=self._tmp)
        wait_until(self._ready, timeout, interval=0.05, what=f"redis-server on port {self.port}")
        return self

    def command(self, *args: str) -> str:
        """One command over RESP (inline form is enough for the tests); returns the raw first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            if self.password:
                sock.sendall(f"AUTH {self.password}\r\n".encode())
                auth = sock.recv(1024)
                if not auth.startswith(b"+OK"):
                    raise AssertionError(f"redis AUTH failed: {auth!r}")
            sock.sendall((" ".join(args) + "\r\n").encode())
            return sock.recv(65536).decode(errors="replace").split("\r\n")[0]

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n{self.log_tail()}")
        return self.command("PING") == "+PONG"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        stop_process(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def url(self, db: int = 0) -> str:
        """`redis://[:password@]127.0.0.1:port/db`."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"


def redis_server(**options: Any) -> contextlib.AbstractContextManager[RedisServer]:
    """A started server, stopped and its directory removed afterwards."""
    return running(RedisServer(**options))


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    """One server for the session, with a password; tests that share it use their own `db` number."""
    with redis_server(password=secrets.token_hex(16)) as server:
        yield server
