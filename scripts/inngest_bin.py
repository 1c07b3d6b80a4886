#!/usr/bin/env python3
"""Print the path of an `inngest` server binary at the version docker-compose.yml pins (stdlib only).

Used by the tests, the benchmarks and the container tests, so every one of them runs the same real
server. Sources, in order:
  1. INNGEST_BIN, if it reports the pinned version;
  2. the cached build .cache/inngest/<version>/inngest;
  3. `go build` of github.com/inngest/inngest/cmd at that version in a throwaway wrapper module
     (CGO_ENABLED=0, -trimpath, the version in -ldflags as upstream's release build sets it);
  4. the binary inside the official image (`docker create` + `docker cp`), where an engine can pull it;
  5. `npm install inngest-cli@<version>`, whose install step downloads the release binary.
Otherwise it exits 3 with one line saying what to install. `--version` prints the pinned version only.

A cold build takes a few minutes on two cores (most of it compiling); a warm call only checks the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
CACHE = ROOT / ".cache" / "inngest"
MODULE = "github.com/inngest/inngest"
PIN = re.compile(r"^x-inngest-image:\s*&\S+\s+inngest/inngest:v(?P<version>\d+\.\d+\.\d+)\s*$", re.M)
# A module's own `replace` lines are ignored when it is a dependency, so the wrapper repeats them.
REPLACE = re.compile(r"^replace\s+(.+?)\s*$", re.M)
MISSING = (
    "no inngest binary: install Go 1.24+ (it builds github.com/inngest/inngest/cmd), "
    "or Docker, or set INNGEST_BIN to an inngest v{version}"
)


class Unavailable(RuntimeError):
    """No source could produce the binary; the message says what was tried."""


def pinned_version(compose_file: Path = COMPOSE_FILE) -> str:
    match = PIN.search(compose_file.read_text())
    if not match:
        raise Unavailable(f"{compose_file.name}: no `x-inngest-image: &... inngest/inngest:vX.Y.Z` line")
    return match.group("version")


def reported_version(binary: str) -> str | None:
    """The version the binary prints, or None if it does not run.

    `--version`, not the `version` command, which also looks for updates online (seconds offline).
    """
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+\.\d+\.\d+)", out)
    return match.group(1) if match else None


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One builder at a time: parallel test sessions wait for the first build instead of repeating it."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(cmd: list[str], cwd: Path, env: dict[str, str], log: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    log.append(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise Unavailable(f"`{' '.join(cmd[:3])}` failed: " + " | ".join(tail))
    return proc.stdout


def go_build(version: str, target: Path) -> None:
    go = shutil.which("go")
    if not go:
        raise Unavailable("go not found")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="inngest-build-") as tmp:
        work = Path(tmp)
        _run([go, "mod", "init", "inngest-server-build"], work, env, log)
        info = json.loads(_run([go, "mod", "download", "-json", f"{MODULE}@v{version}"], work, env, log))
        # A writable copy of the module: its zip lacks the docs submodule that `internal/embeddocs`
        # embeds, and go:embed fails on a pattern with no files. One placeholder file is enough (the
        # server serves MCP docs only when that FS is readable), and nothing else changes.
        source = work / "src"
        shutil.copytree(info["Dir"], source)
        for path in source.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        docs = source / "internal" / "embeddocs" / "website" / "pages" / "docs"
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "README.md").write_text("Docs are not part of a module build.\n")
        replaces = REPLACE.findall((source / "go.mod").read_text())
        go_mod = work / "go.mod"
        go_mod.write_text(
            go_mod.read_text()
            + f"\nrequire {MODULE} v{version}\n"
            + f"\nreplace {MODULE} => ./src\n"
            + "".join(f"\nreplace {r}\n" for r in replaces)
        )
        # Upstream's go.sum pins the same dependency graph the wrapper resolves to.
        shutil.copyfile(source / "go.sum", work / "go.sum")
        (work / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{MODULE}/cmd"\n')
        _run([go, "mod", "tidy"], work, env, log)
        # As upstream's release build: the version and the short commit the module proxy recorded.
        commit = str(info.get("Origin", {}).get("Hash", ""))[:7]
        pkg = f"{MODULE}/pkg/inngest/version"
        ldflags = f"-s -w -X {pkg}.Version={version} -X {pkg}.Hash={commit}"
        partial = target.with_suffix(".partial")
        _run(
            [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(partial), f"{MODULE}/cmd"],
            work,
            env,
            log,
        )
        (target.parent / "build.log").write_text("\n".join(log))
        partial.replace(target)


def from_image(version: str, target: Path) -> None:
    docker = shutil.which("docker")
    if not docker:
        raise Unavailable("docker not found")
    image = f"inngest/inngest:v{version}"
    env = dict(os.environ)
    log: list[str] = []
    _run([docker, "pull", image], target.parent, env, log)
    name = f"inngest-bin-{os.getpid()}"
    _run([docker, "create", "--name", name, image], target.parent, env, log)
    try:
        _run([docker, "cp", f"{name}:/bin/inngest", str(target)], target.parent, env, log)
    finally:
        subprocess.run([docker, "rm", "-f", name], capture_output=True, check=False)


def from_npm(version: str, target: Path) -> None:
    npm = shutil.which("npm")
    if not npm:
        raise Unavailable("npm not found")
    prefix = target.parent / "npm"
    log: list[str] = []
    _run([npm, "install", "--prefix", str(prefix), f"inngest-cli@{version}"], target.parent, dict(os.environ), log)
    found = next((p for p in (prefix / "node_modules" / "inngest-cli").rglob("inngest") if p.is_file()), None)
    if not found:
        raise Unavailable("inngest-cli installed no binary")
    shutil.copyfile(found, target)
    target.chmod(0o755)


def resolve(version: str | None = None) -> Path:
    version = version or pinned_version()
    explicit = os.environ.get("INNGEST_BIN")
    if explicit:
        have = reported_version(explicit)
        if have != version:
            raise Unavailable(f"INNGEST_BIN={explicit} reports version {have}, docker-compose.yml pins {version}")
        return Path(explicit)
    target = CACHE / version / "inngest"
    if target.exists() and reported_version(str(target)) == version:
        return target
    with _locked(target.parent):
        if target.exists() and reported_version(str(target)) == version:
            return target
        errors = []
        for source in (go_build, from_image, from_npm):
            try:
                source(version, target)
            except Unavailable as err:
                errors.append(f"{source.__name__}: {err}")
                continue
            if reported_version(str(target)) == version:
                return target
            errors.append(f"{source.__name__}: built a binary that does not report {version}")
        raise Unavailable(MISSING.format(version=version) + " (tried: " + "; ".join(errors) + ")")


def main(argv: list[str]) -> int:
    try:
        if argv[1:] == ["--version"]:
            print(pinned_version())
            return 0
        print(resolve())
    except Unavailable as err:
        print(f"inngest_bin: {err}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
