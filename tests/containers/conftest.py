"""A private Docker engine for the container tests, and the images they run.

Nothing here needs a registry: the base image is a Debian bookworm root file system made with
`debootstrap --variant=minbase` (mirror taken from the host's apt sources) plus python3/venv/pip, the
host's CA bundle and the host's pip configuration, imported with `docker import`. Every other image is
built FROM it with `--network host`, because the engine runs with `--bridge=none` (no docker0, no
iptables rules): every container and every build step shares the host's network namespace and reaches
only what the host reaches.

The engine has its own socket, data root, exec root and pid file under a temp dir; it is stopped and
the directory removed when the session ends. Tests reach it through the `engine` fixture (its `env`
carries DOCKER_HOST), never through the process environment, so other test modules are unaffected.

Needs root (dockerd, debootstrap). Without root or a tool the tests skip, and fail under REQUIRE_ALL=1.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import importlib.util
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

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE_DIR = ROOT / ".cache" / "containers"

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
# Bump when the recipe below changes in a way the cache key cannot see.
BASE_RECIPE = 1
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PIP_URL_KEYS = ("index-url", "extra-index-url", "find-links")
PIP_FILE_KEYS = ("cert", "client-cert", "constraint", "requirement")

BASE_TAG = "ct-base"


def _load_require_tool() -> Any:
    try:
        from tests.conftest import require_tool  # type: ignore[import-not-found]
    except ImportError:
        spec = importlib.util.spec_from_file_location("_tests_root_conftest", ROOT / "tests" / "conftest.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        require_tool = module.require_tool
    return require_tool


require_tool = _load_require_tool()


def unavailable(message: str) -> None:
    """Skip, or fail under REQUIRE_ALL=1 (same policy as require_tool)."""
    if os.environ.get("REQUIRE_ALL") == "1":
        pytest.fail(f"REQUIRE_ALL=1 and {message}", pytrace=False)
    pytest.skip(message)


def log(message: str) -> None:
    """Progress lines on the terminal (pytest -s shows them; -ra summary does not need them)."""
    print(f"[containers {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------------
# The engine


@dataclass
class Engine:
    docker: str
    env: dict[str, str]
    root: Path
    compose: str | None = None
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
        return _run([self.docker, *args], env=env or self.env, check=check, timeout=timeout, input=input, cwd=cwd)

    def inspect(self, what: str) -> dict[str, Any]:
        out = self.run("inspect", what).stdout
        data: list[dict[str, Any]] = json.loads(out)
        return data[0]


def _run(
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


def _unmount_all(path: Path) -> list[str]:
    """Unmount everything under `path`, deepest first. Returns what could not be unmounted."""
    left = []
    for target in sorted(_mounts_under(path), key=len, reverse=True):
        if (
            subprocess.run(["umount", target], capture_output=True).returncode != 0
            and subprocess.run(["umount", "-l", target], capture_output=True).returncode != 0
        ):
            left.append(target)
    return left


def _remove_tree(path: Path) -> None:
    left = _unmount_all(path)
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


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """dockerd on its own socket/data root/exec root, stopped and cleaned up at the end of the session."""
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
            # The daemon's process group also holds the containerd it started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
    # containerd (started by dockerd in the same process group) normally exits with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(daemon.pid, signal.SIGTERM)
    if os.environ.get("CT_KEEP_ENGINE_DIR") == "1":
        log(f"keeping {eng.root} (CT_KEEP_ENGINE_DIR=1); dockerd log: {log_path}")
        return
    _remove_tree(eng.root)


# --------------------------------------------------------------------------------------------------
# The base image: debootstrap + python3 + the host's trust settings


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key = None
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, None
            continue
        if raw[0] in " \t" and key:
            fields[key] += " " + raw.strip()
            continue
        if ":" in raw:
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()


def host_debian_mirror(suite: str = SUITE) -> str | None:
    """The host's apt mirror for `suite` main (deb822 .sources first, then one-line .list files)."""
    sources_d = Path("/etc/apt/sources.list.d")
    for path in sorted(sources_d.glob("*.sources")):
        for stanza in _deb822_stanzas(path.read_text(errors="replace")):
            if stanza.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in stanza.get("types", "").split():
                continue
            if suite not in stanza.get("suites", "").split() or "main" not in stanza.get("components", ""):
                continue
            uris = stanza.get("uris", "").split()
            if uris:
                return uris[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(sources_d.glob("*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            line = line.split("#", 1)[0].strip()
            parts = line.split()
            if not parts or parts[0] != "deb":
                continue
            parts = parts[1:]
            if parts and parts[0].startswith("["):
                while parts and not parts[0].endswith("]"):
                    parts = parts[1:]
                parts = parts[1:]
            if len(parts) >= 3 and parts[1] == suite and "main" in parts[2:]:
                return parts[0]
    return None


def _is_remote(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def host_pip_files() -> dict[str, bytes]:
    """Files to place at the same path in the image: the host's global pip configuration, with local
    (file:// or directory) indexes and find-links dropped because a container cannot reach them, plus the
    files it points at (CA bundle, constraints) and the host's CA bundle itself."""
    files: dict[str, bytes] = {}
    candidates = [Path("/etc/pip.conf")]
    xdg = Path("/etc/xdg/pip")
    if xdg.is_dir():
        candidates += sorted(p for p in xdg.iterdir() if p.is_file())
    referenced: set[Path] = set()
    for path in candidates:
        if not path.is_file():
            continue
        if path.suffix != ".conf":
            files[str(path)] = path.read_bytes()
            continue
        parser = configparser.RawConfigParser()
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(path)
        for section in parser.sections():
            for key in list(parser[section]):
                value = parser[section][key]
                if key in PIP_URL_KEYS:
                    kept = [v for v in value.split() if _is_remote(v)]
                    if kept:
                        parser[section][key] = " ".join(kept)
                    else:
                        parser.remove_option(section, key)
                elif key in PIP_FILE_KEYS:
                    if Path(value).is_file():
                        referenced.add(Path(value))
                    else:
                        parser.remove_option(section, key)
        lines = []
        for section in parser.sections():
            lines.append(f"[{section}]")
            lines += [f"{k} = {v}" for k, v in parser[section].items()]
        files[str(path)] = ("\n".join(lines) + "\n").encode()
    for ref in referenced:
        files.setdefault(str(ref), ref.read_bytes())
    if HOST_CA_BUNDLE.is_file():
        bundle = HOST_CA_BUNDLE.read_bytes()
        files[str(HOST_CA_BUNDLE)] = bundle
        # Survives an update-ca-certificates run triggered by a later apt-get install in a build.
        files["/usr/local/share/ca-certificates/host-ca-bundle.crt"] = bundle
    return files


def _base_key(mirror: str, extra_files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"recipe": BASE_RECIPE, "suite": SUITE, "variant": "minbase", "packages": BASE_PACKAGES,
             "mirror": mirror},
            sort_keys=True,
        ).encode()
    )  # fmt: skip
    for name in sorted(extra_files):
        h.update(name.encode() + b"\0" + hashlib.sha256(extra_files[name]).digest())
    return h.hexdigest()[:16]


def _debootstrap_rootfs(debootstrap: str, mirror: str, target: Path, extra_files: dict[str, bytes]) -> None:
    cmd = [
        debootstrap,
        "--variant=minbase",
        "--include=" + ",".join(BASE_PACKAGES),
        SUITE,
        str(target),
        mirror,
    ]
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    if keyring.is_file():
        cmd.insert(1, f"--keyring={keyring}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    finally:
        _unmount_all(target)
    if proc.returncode != 0:
        debootstrap_log = target / "debootstrap" / "debootstrap.log"
        detail = debootstrap_log.read_text(errors="replace")[-3000:] if debootstrap_log.exists() else ""
        raise AssertionError(f"debootstrap failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n{detail}")
    for name, content in extra_files.items():
        dest = target / name.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
        dest.chmod(0o644)
    # Smaller image: package caches are not needed at run time.
    for pattern in (
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/*.bin",
        "var/lib/apt/lists/*_*",
        "var/log/*.log",
        "usr/share/doc/*",
        "usr/share/man/*",
        "usr/share/locale/*",
    ):
        for p in target.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)


def _base_tarball(eng: Engine) -> tuple[Path, str]:
    debootstrap = require_tool("debootstrap", "apt-get install debootstrap")
    mirror = host_debian_mirror()
    if not mirror:
        unavailable(f"no Debian {SUITE} mirror in the host's apt sources (/etc/apt/sources.list*)")
        raise AssertionError("unreachable")
    extra = host_pip_files()
    key = _base_key(mirror, extra)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"base-{SUITE}-{key}.tar"
    if tarball.is_file():
        log(f"base root fs from cache {tarball.relative_to(ROOT)}")
        eng.timings["debootstrap"] = 0.0
        return tarball, key
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="ct-rootfs-", dir="/tmp"))
    try:
        rootfs = work / "rootfs"
        log(f"debootstrap --variant=minbase {SUITE} from the host's mirror ...")
        _debootstrap_rootfs(debootstrap, mirror, rootfs, extra)
        eng.timings["debootstrap"] = time.monotonic() - started
        partial = tarball.with_suffix(".partial")
        _run(
            ["tar", "-C", str(rootfs), "--numeric-owner", "--exclude=./proc/*", "--exclude=./sys/*",
             "--exclude=./dev/*", "-cf", str(partial), "."],
            timeout=300,
        )  # fmt: skip
        partial.rename(tarball)
        for old in CACHE_DIR.glob(f"base-{SUITE}-*.tar"):
            if old != tarball:
                old.unlink(missing_ok=True)
        log(f"debootstrap done in {eng.timings['debootstrap']:.1f} s")
    finally:
        _remove_tree(work)
    return tarball, key


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    """`ct-base:<key>`: Debian bookworm minbase + python3/venv/pip + the host's CA bundle and pip config."""
    tarball, key = _base_tarball(engine)
    tag = f"{BASE_TAG}:{key}"
    started = time.monotonic()
    engine.run(
        "import",
        "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change", "ENV LANG=C.UTF-8",
        "--change", 'CMD ["/bin/bash"]',
        str(tarball),
        tag,
        timeout=300,
    )  # fmt: skip
    engine.timings["base_import"] = time.monotonic() - started
    log(f"imported {tag} in {engine.timings['base_import']:.1f} s")
    return tag
