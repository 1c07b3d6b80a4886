#!/usr/bin/env python3
"""Send one event through the app's event API and print the event ids (stdlib only).

    python3 scripts/send_event.py [name] [json-data]
defaults: test/integration {"message": "Hello"}; APP_URL (default http://127.0.0.1:8000).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

APP_URL = os.environ.get("APP_URL", f"http://127.0.0.1:{os.environ.get('APP_PORT', '8000')}")


def send(name: str = "test/integration", data: dict | None = None, app_url: str = APP_URL) -> list[str]:
    body = json.dumps({"name": name, "data": data if data is not None else {"message": "Hello"}}).encode()
    req = urllib.request.Request(  # noqa: S310 - fixed http(s) URL from config
        f"{app_url}/api/events", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return list(json.load(resp)["ids"])


def main(argv: list[str]) -> int:
    name = argv[1] if len(argv) > 1 else "test/integration"
    data = json.loads(argv[2]) if len(argv) > 2 else None
    try:
        ids = send(name, data)
    except urllib.error.HTTPError as e:
        print(f"event API answered {e.code}: {e.read().decode(errors='replace')[:300]}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"app not reachable at {APP_URL}: {e} (is the stack up? make up)", file=sys.stderr)
        return 1
    print(" ".join(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
