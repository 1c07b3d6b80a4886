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

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pinned_binary import Unavailable, WrongVersion, resolve_pinned, run

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


def pinned_version(compose_file: Path = COMPOSE_FILE) -> str:
    match = PIN.search(compose_file.read_text())
    if not match:
        raise Unavailable(f"{compose_file.name}: no `x-inngest-image: &... inngest/inngest:vX.Y.Z` line")
    return match.group("version")


def go_build(version: str, target: Path) -> None:
    go = shutil.which("go")
    if not go:
        raise Unavailable("go not found")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="inngest-build-") as tmp:
        work = Path(tmp)
        run([go, "mod", "init", "inngest-server-build"], work, env, log)
        info = json.loads(run([go, "mod", "download", "-json", f"{MODULE}@v{version}"], work, env, log))
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
        run([go, "mod", "tidy"], work, env, log)
        # As upstream's release build: the version and the short commit the module proxy recorded.
        commit = str(info.get("Origin", {}).get("Hash", ""))[:7]
        pkg = f"{MODULE}/pkg/inngest/version"
        ldflags = f"-s -w -X {pkg}.Version={version} -X {pkg}.Hash={commit}"
        partial = target.with_suffix(".partial")
        run(
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
    run([docker, "pull", image], target.parent, env, log)
    name = f"inngest-bin-{os.getpid()}"
    run([docker, "create", "--name", name, image], target.parent, env, log)
    try:
        run([docker, "cp", f"{name}:/bin/inngest", str(target)], target.parent, env, log)
    finally:
        subprocess.run([docker, "rm", "-f", name], capture_output=True, check=False)


def from_npm(version: str, target: Path) -> None:
    npm = shutil.which("npm")
    if not npm:
        raise Unavailable("npm not found")
    prefix = target.parent / "npm"
    log: list[str] = []
    run([npm, "install", "--prefix", str(prefix), f"inngest-cli@{version}"], target.parent, dict(os.environ), log)
    found = next((p for p in (prefix / "node_modules" / "inngest-cli").rglob("inngest") if p.is_file()), None)
    if not found:
        raise Unavailable("inngest-cli installed no binary")
    shutil.copyfile(found, target)
    target.chmod(0o755)


def resolve(version: str | None = None) -> Path:
    """The binary (`reported_version` reads `--version`, not the `version` command, which looks for updates
    online and takes seconds offline)."""
    version = version or pinned_version()
    sources = (go_build, from_image, from_npm)
    try:
        return resolve_pinned("INNGEST_BIN", CACHE / version / "inngest", version, sources, COMPOSE_FILE.name)
    except WrongVersion:
        raise
    except Unavailable as err:
        raise Unavailable(f"{MISSING.format(version=version)} ({err})") from None


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
