"""The base image of every test image: Debian bookworm from debootstrap, imported without a registry.

`debootstrap --variant=minbase` (mirror taken from the host's apt sources) plus python3/venv/pip, the
host's CA bundle and the host's pip configuration, imported with `docker import`. The root fs is cached
in .cache/containers/ (keyed by mirror, packages and the copied host files); delete it to start fresh.
Its apt sources point at the same mirror, so image recipes can `apt-get install` Debian's packages.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.containers.engine import Engine, log, remove_tree, run_cmd, unmount_all
from tests.support import ROOT, require_tool, unavailable

CACHE_DIR = ROOT / ".cache" / "containers"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
# Bump when the recipe below changes in a way the cache key cannot see.
BASE_RECIPE = 1
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PIP_URL_KEYS = ("index-url", "extra-index-url", "find-links")
PIP_FILE_KEYS = ("cert", "client-cert", "constraint", "requirement")
BASE_TAG = "ct-base"


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
        unmount_all(target)
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
        run_cmd(
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
        remove_tree(work)
    return tarball, key


def import_base_image(engine: Engine) -> str:
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
