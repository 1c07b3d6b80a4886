"""The resolve order shared by the scripts that provide a pinned server binary (stdlib only).

An explicit path from the environment (refused unless it reports the pinned version), then the cached
copy, then each source in turn under a lock, each result checked by the version it reports.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

Source = Callable[[str, Path], None]


class Unavailable(RuntimeError):
    """No source could produce the binary; the message says what was tried."""


class WrongVersion(Unavailable):
    """The binary named in the environment reports another version than the pin."""


def reported_version(binary: str, pattern: str = r"(\d+\.\d+\.\d+)") -> str | None:
    """The version `binary --version` prints, or None if it does not run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(pattern, out)
    return match.group(1) if match else None


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One builder at a time: parallel test sessions wait for the first build instead of repeating it."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run(cmd: list[str], cwd: Path, env: dict[str, str], log: list[str]) -> str:
    """Run one build step, keeping its output for the build log; a failure is Unavailable with its tail."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    log.append(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise Unavailable(f"`{' '.join(cmd[:3])}` failed: " + " | ".join(tail))
    return proc.stdout


def resolve_pinned(
    env_var: str,
    target: Path,
    version: str,
    sources: Sequence[Source],
    pinned_by: str,
    pattern: str = r"(\d+\.\d+\.\d+)",
) -> Path:
    """`$env_var`, else `target` if cached, else the first source whose result reports `version`."""

    def reports(binary: str | Path) -> str | None:
        return reported_version(str(binary), pattern)

    explicit = os.environ.get(env_var)
    if explicit:
        have = reports(explicit)
        if have != version:
            raise WrongVersion(f"{env_var}={explicit} reports version {have}, {pinned_by} pins {version}")
        return Path(explicit)
    if target.exists() and reports(target) == version:
        return target
    with locked(target.parent):
        if target.exists() and reports(target) == version:
            return target
        errors = []
        for source in sources:
            try:
                source(version, target)
            except Unavailable as err:
                errors.append(f"{source.__name__}: {err}")
                continue
            if reports(target) == version:
                return target
            errors.append(f"{source.__name__}: built a binary that does not report {version}")
        raise Unavailable("tried: " + "; ".join(errors))
