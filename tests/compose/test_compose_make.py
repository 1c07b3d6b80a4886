"""mk/compose.mk and its scripts: .env creation, Compose v2 detection, `make up` checking the sync job."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.compose.compose_support import ROOT

MAKE_ENV = ROOT / "scripts" / "make_env.py"


def make_env(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(MAKE_ENV), str(target)], capture_output=True, text=True, check=True)


def parse_env(path: Path) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in path.read_text().splitlines() if re.match(r"^[A-Z0-9_]+=", ln))


def test_make_env_creates_fresh_private_keys(tmp_path: Path) -> None:
    a, b = tmp_path / "a.env", tmp_path / "b.env"
    make_env(a)
    make_env(b)
    env_a, env_b = parse_env(a), parse_env(b)
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    key = env_a["INNGEST_SIGNING_KEY"]
    # `inngest start` only accepts even-length hex.
    assert re.fullmatch(r"(?:[0-9a-f]{2}){32}", key)
    for name in (
        "INNGEST_EVENT_KEY",
        "APP_DB_PASSWORD",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "INNGEST_UI_PASSWORD",
    ):
        assert re.fullmatch(r"[0-9a-f]{32,}", env_a[name]), name
        assert env_a[name] != env_b[name], f"{name} is not random"
    assert len(set(env_a.values())) == len(env_a), "every secret is distinct"


def test_make_env_never_overwrites_and_fills_gaps(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("INNGEST_SIGNING_KEY=abcd\nINNGEST_EVENT_KEY=ev\n")
    make_env(target)
    env = parse_env(target)
    assert env["INNGEST_SIGNING_KEY"] == "abcd" and env["INNGEST_EVENT_KEY"] == "ev"
    assert re.fullmatch(r"[0-9a-f]{48}", env["POSTGRES_PASSWORD"])
    before = target.read_text()
    make_env(target)
    assert target.read_text() == before


def test_make_env_writes_the_key_files_compose_mounts(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    make_env(target)
    env, secrets_dir = parse_env(target), tmp_path / ".env.secrets"
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    files = {p.name: p for p in secrets_dir.iterdir()}
    assert sorted(files) == ["event-api-keys", "inngest-event-key", "inngest-server.json", "inngest-signing-key"]
    # Readable by the app's own uid inside the container (a bind mount keeps the host mode); the 0700
    # directory keeps other host users out.
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files.values())
    assert files["inngest-signing-key"].read_text() == env["INNGEST_SIGNING_KEY"]
    assert files["event-api-keys"].read_text() == env["EVENT_API_KEYS"]
    server = json.loads(files["inngest-server.json"].read_text())
    assert server == {"signing-key": env["INNGEST_SIGNING_KEY"], "event-key": [env["INNGEST_EVENT_KEY"]]}

    # An edited .env (rotation: two event keys; Cloud keys added) reaches the files at the next run.
    text = target.read_text().replace(f"INNGEST_EVENT_KEY={env['INNGEST_EVENT_KEY']}", "INNGEST_EVENT_KEY=old,new")
    target.write_text(text + "INNGEST_CLOUD_SIGNING_KEY=signkey-prod-0a0b\nINNGEST_CLOUD_EVENT_KEY=c\n")
    make_env(target)
    assert json.loads(files["inngest-server.json"].read_text())["event-key"] == ["old", "new"]
    assert (secrets_dir / "inngest-cloud-signing-key").read_text() == "signkey-prod-0a0b"
    # A key removed from .env loses its file; SECRETS_DIR moves the directory.
    target.write_text(target.read_text().replace("INNGEST_CLOUD_EVENT_KEY=c\n", ""))
    elsewhere = tmp_path / "elsewhere"
    make_env(target)
    subprocess.run(
        [sys.executable, str(MAKE_ENV), str(target)], env={**os.environ, "SECRETS_DIR": str(elsewhere)}, check=True
    )
    assert not (secrets_dir / "inngest-cloud-event-key").exists()
    assert (elsewhere / "inngest-signing-key").read_text() == env["INNGEST_SIGNING_KEY"]


def test_generated_env_renders_every_mode(
    tmp_path: Path, run_compose: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    target = tmp_path / ".env"
    make_env(target)
    with target.open("a") as f:  # Cloud keys are never generated: they come from Inngest Cloud.
        f.write("INNGEST_CLOUD_SIGNING_KEY=signkey-prod-0a0b\nINNGEST_CLOUD_EVENT_KEY=x\n")
        f.write("INNGEST_CLOUD_SERVE_ORIGIN=https://app.example.com\n")
    for mode in ("base", "dev", "ha", "cloud"):
        proc = run_compose(mode, "config", "--quiet", env_path=target)
        assert proc.returncode == 0 and not proc.stderr, proc.stderr


def _tool_dir(tmp_path: Path, names: list[str]) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in names:
        path = shutil.which(name)
        assert path, name
        (bindir / name).symlink_to(path)
    return bindir


def test_compose_v2_missing_is_one_line_and_non_zero(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "compose.sh"
    shutil.copy(ROOT / "scripts" / "compose.sh", script)
    bindir = _tool_dir(tmp_path, ["sh", "dirname", "grep", "head", "cut"])
    proc = subprocess.run([str(script), "version"], env={"PATH": str(bindir)}, capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Docker Compose v2" in lines[0] and "install" in lines[0]


def test_make_up_without_compose_v2_says_what_to_install(tmp_path: Path) -> None:
    make = shutil.which("make")
    if not make:
        pytest.skip("make not installed")
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "compose.sh"  # a copy away from the repository's .venv
    shutil.copy(ROOT / "scripts" / "compose.sh", script)
    bindir = _tool_dir(tmp_path, ["sh", "dirname", "grep", "head", "cut"])
    proc = subprocess.run(
        [make, "--no-print-directory", "up", f"COMPOSE_SH={script}", f"ENV_FILE={tmp_path / 'x.env'}"],
        cwd=ROOT,
        env={"PATH": str(bindir)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Docker Compose v2 is missing" in lines[0], proc.stderr
    assert not (tmp_path / "x.env").exists(), "nothing happens before the check"


FAKE_DOCKER = """#!/bin/sh
# Stand-in `docker` whose `compose` records its arguments; the sync job exits $FAKE_SYNC_EXIT.
[ "$1" = compose ] || exit 1
shift
echo "$*" >> "$FAKE_LOG"
case " $* " in
  *" version "*) echo "Docker Compose version v2.40.3" ;;
  *" config --services "*) printf 'db\nmigrate\napp\ninngest\nsync\nprometheus\n' ;;
  *" run --rm --no-deps sync "*)
    [ "${FAKE_SYNC_EXIT:-0}" = 0 ] && echo "sync ok" && exit 0
    echo "sync failed (rejected): server refused the registration: signing key invalid" >&2
    exit "$FAKE_SYNC_EXIT" ;;
esac
exit 0
"""


def run_make_up(tmp_path: Path, sync_exit: int, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    proc, calls = run_make(tmp_path, "up", *args, sync_exit=sync_exit)
    assert (tmp_path / "stack.env").exists(), proc.stderr
    return proc, calls


def run_make(tmp_path: Path, *args: str, sync_exit: int = 0) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`make ARGS` with the stand-in `docker` first on PATH: the result and the compose calls it recorded."""
    make = shutil.which("make")
    if not make:
        pytest.skip("make not installed")
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    (bindir / "docker").write_text(FAKE_DOCKER)
    (bindir / "docker").chmod(0o755)
    log = tmp_path / "compose.log"
    env = {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
        "FAKE_SYNC_EXIT": str(sync_exit),
    }
    env_file = tmp_path / "stack.env"
    cmd = [make, "--no-print-directory", *args, f"ENV_FILE={env_file}", f"PYTHON={sys.executable}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return proc, log.read_text().splitlines() if log.exists() else []


def test_make_up_fails_when_the_sync_job_fails(tmp_path: Path) -> None:
    proc, calls = run_make_up(tmp_path, sync_exit=3)
    assert proc.returncode != 0
    assert "signing key invalid" in proc.stderr
    assert "sync job failed" in proc.stderr
    assert any(" up -d --build --wait" in c for c in calls)


def test_make_up_order_and_mode(tmp_path: Path) -> None:
    proc, calls = run_make_up(tmp_path, 0, "MODE=ha")
    assert proc.returncode == 0, proc.stderr
    steps = [c for c in calls if " up " in f" {c} " or " run " in f" {c} "]
    assert len(steps) == 2 and " up " in f" {steps[0]} " and steps[1].endswith("run --rm --no-deps sync")
    # `up --wait` gets every service but the one-shot jobs (it would count their exit as a failure); migrate
    # still runs first, as the app's dependency.
    assert steps[0].endswith("--wait-timeout 300 db app inngest prometheus"), steps[0]
    assert all("-f docker-compose.yml -f deploy/compose/ha.yml" in c for c in steps)
    assert all("--env-file" in c for c in steps)


def test_make_rejects_an_unknown_mode() -> None:
    make = shutil.which("make")
    if not make:
        pytest.skip("make not installed")
    proc = subprocess.run([make, "-n", "up", "MODE=prod"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and "dev ha cloud" in proc.stderr


def test_every_target_is_documented() -> None:
    text = (ROOT / "mk" / "compose.mk").read_text()
    documented = set(re.findall(r"^([a-z0-9-]+):.*## \S", text, re.M))
    assert {"up", "down", "logs", "ps", "sync", "send", "doctor", "e2e", "backup", "restore"} <= documented


def test_scripts_are_executable() -> None:
    for name in ("compose.sh", "make_env.py", "send_event.py", "e2e.py", "backup.py"):
        assert os.access(ROOT / "scripts" / name, os.X_OK), name
