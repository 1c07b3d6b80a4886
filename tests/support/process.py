"""What every server process handle in tests/support shares: stopping, log tails, a scoped start."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import pytest


class Service(Protocol):
    def start(self) -> Any: ...
    def close(self) -> None: ...


H = TypeVar("H", bound=Service)


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
    """Send `sig` and reap; SIGKILL if it is still alive after `timeout` s. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class TempDirServer:
    """A server process whose data and log live in a private temp dir (`_tmp`, made by `start()`).

    Subclasses implement `start(timeout)` and `stop()`; `restart()` keeps the dir, `close()` removes it.
    """

    _tmp: Path | None = None
    log_name = "server.log"

    def start(self, timeout: float = 60) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        assert self._tmp is not None, "start() first"
        return self._tmp / self.log_name

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path if self._tmp else None, lines)

    def restart(self, timeout: float = 60) -> Self:
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


@contextlib.contextmanager
def running(handle: H) -> Iterator[H]:
    """`handle` started; closed (stopped, data removed) afterwards, also when the start failed half-way."""
    try:
        handle.start()
        yield handle
    finally:
        handle.close()


class Handle(Protocol):
    def log_tail(self, lines: int = ...) -> str: ...
    def close(self) -> None: ...


Hd = TypeVar("Hd", bound=Handle)


@contextlib.contextmanager
def closed_after(request: pytest.FixtureRequest, name: Callable[[Hd], str]) -> Iterator[list[Hd]]:
    """A list for a factory fixture's handles: each is closed at the end, and when the test failed its log
    tail is printed first, under `--- name(handle) ---` (pytest shows it with the failure)."""
    made: list[Hd] = []
    try:
        yield made
    finally:
        report = getattr(request.node, "rep_call", None)  # set by tests/conftest.py's report hook
        for handle in made:
            if report is not None and report.failed:
                print(f"--- {name(handle)} ---\n{handle.log_tail()}")
            handle.close()


# Passed through to every process a test starts with an environment of its own, so `make test`'s coverage
# (pyproject's [tool.coverage]) measures the app in those processes too.
_MEASUREMENT = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_FILE")


def clean_env(**env: str) -> dict[str, str]:
    """An environment of only PATH (the caller's, else /usr/bin:/bin), `env` and the coverage variables."""
    measured = {k: os.environ[k] for k in _MEASUREMENT if k in os.environ}
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **measured, **env}
