#!/usr/bin/env python3
"""Send one event through the app's event API and print the event ids (stdlib only).

    python3 scripts/send_event.py [name] [json-data]
defaults: test/integration {"message": "Hello"}; APP_URL, else http://127.0.0.1:$APP_PORT with APP_PORT
from the environment or from .env (ENV_FILE), the file `make up` writes; 8000 without either. The bearer
token is EVENT_API_KEY, or else the first token of EVENT_API_KEYS (the environment, then .env).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dotenv(path: Path | None = None) -> dict[str, str]:
    """The NAME=value lines of .env (what compose interpolates), overridden by the environment."""
    path = path or Path(os.environ.get("ENV_FILE") or ROOT / ".env")
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() and not name.lstrip().startswith("#"):
                values[name.strip()] = value.strip().strip("'\"")
    return values | {k: v for k, v in os.environ.items() if k in values or k in ("APP_PORT", "APP_URL")}


def app_url(env: dict[str, str] | None = None) -> str:
    env = dotenv() if env is None else env
    return env.get("APP_URL") or f"http://127.0.0.1:{env.get('APP_PORT') or '8000'}"


APP_URL = app_url()


def api_token(env: dict[str, str] | None = None) -> str | None:
    """EVENT_API_KEY, else the first token of EVENT_API_KEYS (the environment, then .env)."""
    env = dotenv() if env is None else env
    keys = os.environ.get("EVENT_API_KEY") or os.environ.get("EVENT_API_KEYS") or env.get("EVENT_API_KEYS", "")
    first = keys.split(",")[0].strip()
    return first.split("=", 1)[0] or None  # a token's name patterns follow its `=`


def send(
    name: str = "test/integration", data: dict | None = None, app_url: str = APP_URL, token: str | None = None
) -> list[str]:
    body = json.dumps({"name": name, "data": data if data is not None else {"message": "Hello"}}).encode()
    headers = {"Content-Type": "application/json"}
    token = token or api_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(  # noqa: S310 - fixed http(s) URL from config
        f"{app_url}/api/events", data=body, method="POST", headers=headers
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return list(json.load(resp)["ids"])


def main(argv: list[str]) -> int:
    name = argv[1] if len(argv) > 1 else "test/integration"
    data = json.loads(argv[2]) if len(argv) > 2 else None
    try:
        ids = send(name, data)
    except urllib.error.HTTPError as e:
        hint = " (no token: set EVENT_API_KEYS in .env, make up creates it)" if e.code == 401 else ""
        print(f"event API answered {e.code}: {e.read().decode(errors='replace')[:300]}{hint}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"app not reachable at {APP_URL}: {e} (is the stack up? make up)", file=sys.stderr)
        return 1
    print(" ".join(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
