"""A private Docker engine: dockerd on its own socket, data root and exec root, without a bridge.

The engine runs with `--bridge=none --iptables=false` (no docker0, no iptables rules): every container
and every build step shares the host's network namespace and reaches only what the host reaches. It is
stopped and its directory removed on exit (CT_KEEP_ENGINE_DIR=1 keeps build logs and dockerd.log).
Tests reach it through `Engine.env` (DOCKER_HOST), never through the process environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import require_tool, unavailable


def log(message: str) -> None:
    """A progress line (shown with pytest -s)."""
    print(f"[containers {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Engine:
    docker: str
    env: dict[str, str]
    root: Path
    timings: dict[str, float] = field(default_factory=dict)

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 300,
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker ARGS` against the private engine; raise with the output on failure."""
        return run_cmd([self.docker, *args], env=env or self.env, check=check, timeout=timeout, input=input, cwd=cwd)

    def has_image(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False, timeout=30).returncode == 0

    def inspect(self, what: str) -> dict[str, Any]:
        out = self.run("inspect", what).stdout
        data: list[dict[str, Any]] = json.loads(out)
        return data[0]


def run_cmd(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 300,
    input: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=timeout, input=input, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    mounts = []
    with open("/proc/self/mounts") as f:
        for line in f:
            target = line.split()[1].replace("\\040", " ")
            if target.startswith(prefix) or target == prefix[:-1]:
                mounts.append(target)
    return mounts


def unmount_all(path: Path) -> list[str]:
    """Unmount everything under `path`, deepest first. Returns what could not be unmounted."""
    left = []
    for target in sorted(_mounts_under(path), key=len, reverse=True):
        if (
            subprocess.run(["umount", target], capture_output=True).returncode != 0
            and subprocess.run(["umount", "-l", target], capture_output=True).returncode != 0
        ):
            left.append(target)
    return left


def remove_tree(path: Path) -> None:
    left = unmount_all(path)
    if left:
        log(f"not removing {path}: still mounted: {left}")
        return
    shutil.rmtree(path, ignore_errors=True)


def _docker_client() -> str:
    # Prefer the client that ships with Debian's docker.io: it is the engine's own version (API 1.41)
    # and builds with the engine's integrated BuildKit without a buildx plugin.
    debian_client = Path("/usr/bin/docker")
    if debian_client.is_file() and os.access(debian_client, os.X_OK):
        return str(debian_client)
    return str(require_tool("docker", "apt-get install docker.io"))


@contextlib.contextmanager
def private_engine() -> Iterator[Engine]:
    """dockerd on its own socket/data root/exec root, stopped and its directory removed on exit."""
    dockerd = require_tool("dockerd", "apt-get install docker.io (Debian's Docker engine)")
    docker = _docker_client()
    if os.geteuid() != 0:
        unavailable("the container tests start dockerd and run debootstrap, which need root")

    # Short path: the socket path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="ct-dockerd-", dir="/tmp"))
    sock = root / "docker.sock"
    config_file = root / "daemon.json"
    config_file.write_text("{}\n")  # ignore /etc/docker/daemon.json
    (root / "client").mkdir()
    env = dict(os.environ)
    env.update(
        DOCKER_HOST=f"unix://{sock}",
        DOCKER_CONFIG=str(root / "client"),  # no ~/.docker, no credential helpers, no plugins
        DOCKER_CLI_HINTS="false",
    )
    env.pop("DOCKER_CONTEXT", None)
    env.pop("DOCKER_TLS_VERIFY", None)
    log_path = root / "dockerd.log"
    started = time.monotonic()
    with open(log_path, "wb") as log_file:
        daemon = subprocess.Popen(
            [
                dockerd,
                "--host",
                f"unix://{sock}",
                "--data-root",
                str(root / "data"),
                "--exec-root",
                str(root / "exec"),
                "--pidfile",
                str(root / "dockerd.pid"),
                "--config-file",
                str(config_file),
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--log-level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    eng = Engine(docker=docker, env=env, root=root)
    try:
        deadline = time.monotonic() + 60
        while True:
            if daemon.poll() is not None:
                raise AssertionError(f"dockerd exited with {daemon.returncode}:\n{log_path.read_text()[-4000:]}")
            probe = eng.run("version", "--format", "{{.Server.Version}}", check=False, timeout=20)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not answer within 60 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        eng.timings["dockerd_start"] = time.monotonic() - started
        log(f"dockerd {probe.stdout.strip()} ready in {eng.timings['dockerd_start']:.1f} s on {sock}")
        yield eng
    finally:
        _stop_engine(eng, daemon, log_path)


def _stop_engine(eng: Engine, daemon: subprocess.Popen[bytes], log_path: Path) -> None:
    if daemon.poll() is None:
        with contextlib.suppress(Exception):
            ids = eng.run("ps", "-aq", check=False, timeout=30).stdout.split()
            if ids:
                eng.run("rm", "-f", "-v", *ids, check=False, timeout=60)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Still ours (not reaped yet): kill the daemon's own process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
    if os.environ.get("CT_KEEP_ENGINE_DIR") == "1":
        log(f"keeping {eng.root} (CT_KEEP_ENGINE_DIR=1); dockerd log: {log_path}")
        return
    remove_tree(eng.root)
