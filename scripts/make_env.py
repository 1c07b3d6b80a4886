#!/usr/bin/env python3
"""Create .env from .env.example with fresh random secrets (stdlib only).

Fills every empty `NAME=` line whose NAME is a generated secret. An existing .env is never
overwritten: only generated secrets it lacks are appended, so upgrades keep working keys.

Then, on every run, the keys compose mounts as `secrets:` are written from .env into SECRETS_DIR (default
`<env file>.secrets`), so an edited .env (a rotated key) reaches the containers at their next start.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Hex everywhere: `inngest start` requires an even-length hex signing key, and hex is safe
# inside the Postgres/Redis URIs without escaping.
GENERATED = {
    "INNGEST_SIGNING_KEY": 32,
    "INNGEST_EVENT_KEY": 32,
    "APP_DB_PASSWORD": 24,
    # The bearer token `make send` (and any other client of the app's event API) presents.
    "EVENT_API_KEYS": 32,
    "POSTGRES_PASSWORD": 24,
    "REDIS_PASSWORD": 24,
    "GRAFANA_ADMIN_PASSWORD": 16,
    "INNGEST_UI_PASSWORD": 16,
}
LINE = re.compile(r"^([A-Z0-9_]+)=(.*)$")
# .env name -> the file docker-compose.yml (and deploy/compose/cloud.yml) declares as a secret.
SECRET_FILES = {
    "INNGEST_SIGNING_KEY": "inngest-signing-key",
    "INNGEST_EVENT_KEY": "inngest-event-key",
    "EVENT_API_KEYS": "event-api-keys",
    "INNGEST_CLOUD_SIGNING_KEY": "inngest-cloud-signing-key",
    "INNGEST_CLOUD_EVENT_KEY": "inngest-cloud-event-key",
}
# `inngest start` reads its keys from a config file; several event keys are comma-separated, as in its env.
SERVER_CONFIG = "inngest-server.json"


def render(example: str) -> str:
    out = []
    for line in example.splitlines():
        m = LINE.match(line)
        if m and m.group(1) in GENERATED and not m.group(2):
            line = f"{m.group(1)}={secrets.token_hex(GENERATED[m.group(1)])}"
        out.append(line)
    return "\n".join(out) + "\n"


def missing(existing: str) -> list[str]:
    have = {m.group(1) for m in map(LINE.match, existing.splitlines()) if m and m.group(2)}
    return [name for name in GENERATED if name not in have]


def values(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip().strip("'\"") for m in map(LINE.match, text.splitlines()) if m}


def write_secret_files(env: dict[str, str], directory: Path) -> None:
    """One file per key present in .env (a key no longer there loses its file), only rewritten when changed.

    The directory is 0700: nobody else on the host gets in. The files are 0644 because Compose bind-mounts a
    file secret as it is (its uid/gid/mode options apply to swarm only) and the app reads it as uid 10001,
    which is not the file's owner.
    """
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    files = {file: env.get(name, "") for name, file in SECRET_FILES.items()}
    if env.get("INNGEST_SIGNING_KEY") and env.get("INNGEST_EVENT_KEY"):
        keys = {"signing-key": env["INNGEST_SIGNING_KEY"], "event-key": env["INNGEST_EVENT_KEY"].split(",")}
        files[SERVER_CONFIG] = json.dumps(keys)
    else:
        files[SERVER_CONFIG] = ""
    for file, value in files.items():
        path = directory / file
        if not value:
            path.unlink(missing_ok=True)
        elif not path.is_file() or path.read_text() != value:
            tmp = directory / f".{file}.tmp"
            tmp.write_text(value)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)


def ensure_env(target: Path) -> None:
    if not target.exists():
        text = render((ROOT / ".env.example").read_text())
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        print(f"created {target} with fresh random keys")
        return
    os.chmod(target, 0o600)  # it holds secrets, whoever created it and with whatever umask
    names = missing(target.read_text())
    if names:
        with target.open("a") as f:
            f.write("".join(f"{n}={secrets.token_hex(GENERATED[n])}\n" for n in names))
        print(f"added to {target}: {', '.join(names)}")


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else ROOT / ".env"
    ensure_env(target)
    secrets_dir = Path(os.environ.get("SECRETS_DIR") or f"{target}.secrets")
    write_secret_files(values(target.read_text()), secrets_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
