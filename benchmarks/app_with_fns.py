"""`python -m app`, but serving extra benchmark functions: `python benchmarks/app_with_fns.py --functions N`.

N is the total number of served functions: the app's own plus `N - own` from `bench_functions`. The app is
built by `app.main.create_app(settings, builders=...)` and served exactly as `python -m app` serves it
(`app.server.serve`), so /metrics, /readyz and the sync path are the production ones. Settings come from
the same environment variables as the app.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import bench_functions  # benchmarks/ is on sys.path: it is this script's directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--functions", type=int, required=True, help="total number of functions to serve")
    args = parser.parse_args(argv)

    from app import functions as app_functions
    from app import server
    from app.cli import settings_or_exit
    from app.main import create_app

    own = app_functions._builders()
    extra = bench_functions.builders(max(args.functions - len(own), 0))
    builders: list[Any] = [*own, *extra]

    settings = settings_or_exit()
    if settings.web_concurrency != 1:
        print("app_with_fns: WEB_CONCURRENCY must be 1", file=sys.stderr)
        return 2
    # serve() builds the single-worker app through this hook; hand it the app with the extra functions.
    server._single_app = lambda s: create_app(s, builders=builders)  # type: ignore[attr-defined]
    server.serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
