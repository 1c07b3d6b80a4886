"""Container health check: exit 0 when /readyz answers 200. Standard library only (no curl in slim images).

Usage: python -m app.healthcheck [--url URL]   (default http://127.0.0.1:$PORT/readyz)
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.healthcheck")
    # Runs every few seconds: it reads PORT directly instead of importing the settings model.
    default = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/readyz"
    parser.add_argument("--url", default=default)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout) as resp:  # noqa: S310 - http(s) URL
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {args.url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {args.url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
