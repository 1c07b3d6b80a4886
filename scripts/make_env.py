#!/usr/bin/env python3
"""Create .env from .env.example with fresh random secrets (stdlib only).

Fills every empty `NAME=` line whose NAME is a generated secret. An existing .env is never
overwritten: only generated secrets it lacks are appended, so upgrades keep working keys.
"""

from __future__ import annotations

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


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else ROOT / ".env"
    if not target.exists():
        text = render((ROOT / ".env.example").read_text())
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        print(f"created {target} with fresh random keys")
        return 0
    os.chmod(target, 0o600)  # it holds secrets, whoever created it and with whatever umask
    names = missing(target.read_text())
    if names:
        with target.open("a") as f:
            f.write("".join(f"{n}={secrets.token_hex(GENERATED[n])}\n" for n in names))
        print(f"added to {target}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
