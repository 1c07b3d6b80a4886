"""`python -m app`, but serving extra benchmark functions: `python benchmarks/app_with_fns.py --functions N`.

N is the total number of served functions: the app's own plus `N - own` from `bench_functions`. The app is
built by `app.main.create_app(settings, builders=...)` and served exactly as `python -m app` serves it
(`app.server.serve`), so /metrics, /readyz and the sync path are the production ones. Settings come from
the same environment variables as the app.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script: the repository root on the path makes `benchmarks.*` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bench_functions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--functions", type=int, default=0, help="total number of functions to serve")
    parser.add_argument(
        "--e2e-workflow", action="store_true", help="also serve the end-to-end phase's three-step workflow"
    )
    parser.add_argument(
        "--measure-sync-build",
        type=int,
        metavar="REPEATS",
        help="do not serve: time building the sync payload (min of REPEATS) and print JSON",
    )
    args = parser.parse_args(argv)

    from app import functions as app_functions
    from app.server import serve
    from app.settings import settings_or_exit

    own = app_functions.builders()
    extra = bench_functions.builders(max(args.functions - len(own), 0))
    builders: list[Any] = [*own, *extra, *([bench_functions.three_steps] if args.e2e_workflow else [])]

    settings = settings_or_exit()
    if args.measure_sync_build:
        print(json.dumps(measure_sync_build(settings, builders, args.measure_sync_build)))
        return 0
    if settings.web_concurrency != 1:
        print("app_with_fns: WEB_CONCURRENCY must be 1", file=sys.stderr)
        return 2
    serve(settings, builders=builders)
    return 0


def measure_sync_build(settings: Any, builders: list[Any], repeats: int) -> dict[str, Any]:
    """What the SDK does for each sync before any I/O: every function's config, the body, its JSON."""
    import datetime

    from inngest._internal import server_lib, transforms
    from inngest._internal.comm_lib.handler import get_function_configs

    from app.db import async_engine
    from app.effects import Ledger
    from app.functions.deps import Services
    from app.inngest_client import build_client

    client = build_client(settings)
    services = Services(ledger=Ledger(async_engine(settings.database)), retention=datetime.timedelta(days=7))
    functions = {fn.get_id(): fn for fn in (build(client, services) for build in builders)}
    url = settings.serve_url or "http://app:8000/api/inngest"
    best = float("inf")
    size = 0
    for _ in range(repeats):
        started = time.perf_counter()
        configs = get_function_configs(url, functions)
        if isinstance(configs, Exception):
            raise configs
        body = server_lib.SynchronizeRequest(
            app_name=client.app_id,
            app_version=client.app_version,
            deploy_type=server_lib.DeployType.PING,
            framework=server_lib.Framework.FAST_API,
            functions=configs,
            sdk="py",
            url=url,
            v="0.1",
        ).to_dict()
        if isinstance(body, Exception):
            raise body
        size = len(json.dumps(transforms.deep_strip_none(body)))
        best = min(best, time.perf_counter() - started)
    return {"functions": len(functions), "min_ms": best * 1000, "bytes": size}


if __name__ == "__main__":
    sys.exit(main())
