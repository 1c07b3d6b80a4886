"""Per-request CPU cost of the ASGI stack alone (no sockets, no HTTP parser), for finding hot spots.

Drives one ASGI app in-process with the same signed step invocation the wrk rounds use and reports the
minimum over batches of the mean CPU time per request (the minimum is what survives a busy machine).
Variants switch parts of the app off, so each part's cost is the difference to `app`.

    python benchmarks/asgi_cost.py [--requests 400] [--batches 15] [--profile out.pstats] VARIANT

VARIANT: baseline | app | app-no-http-metrics | app-no-sdk-middleware | app-no-log | app-no-own-middleware
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

# Run as a script: the repository root (for `benchmarks.*`) and this directory (for baseline_app).
sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from benchmarks import config  # noqa: E402  the same request body and signature as the wrk rounds

VARIANTS = (
    "baseline",
    "app",
    "app-no-http-metrics",
    "app-no-sdk-middleware",
    "app-no-log",
    "app-no-own-middleware",
)


def _app_env(key: str) -> None:
    os.environ.update(
        {
            "INNGEST_MODE": "self-hosted",
            "INNGEST_BASE_URL": "http://127.0.0.1:9",
            "INNGEST_SIGNING_KEY": key,
            "INNGEST_EVENT_KEY": config.EVENT_KEY,
            "INNGEST_SERVE_ORIGIN": config.SERVE_ORIGIN,
            "INNGEST_SYNC_ON_STARTUP": "false",
            "LOG_LEVEL": "INFO",
        }
    )


def build(variant: str, key: str) -> Any:
    if variant == "baseline":
        os.environ["INNGEST_SIGNING_KEY"] = key
        os.environ["INNGEST_BASE_URL"] = "http://127.0.0.1:9"
        import uvicorn.config

        logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # what `uvicorn` sets up by default
        from benchmarks import baseline_app

        return baseline_app.app

    _app_env(key)
    if variant == "app-no-log":
        os.environ["LOG_LEVEL"] = "WARNING"
    from app import metrics
    from app.logs import configure_logging
    from app.main import create_app
    from app.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    if variant == "app-no-http-metrics":
        metrics.HttpMetrics.__call__ = lambda self, scope, receive, send: self.app(scope, receive, send)
    if variant == "app-no-sdk-middleware":
        import inngest

        import app.inngest_client as ic

        original = inngest.Inngest

        def client(**kwargs: Any) -> Any:
            kwargs["middleware"] = []
            return original(**kwargs)

        ic.inngest = type("M", (), {"Inngest": staticmethod(client)})
    if variant == "app-no-own-middleware":
        import fastapi

        add = fastapi.FastAPI.add_middleware

        def skip_own(self: Any, cls: Any, *args: Any, **kwargs: Any) -> None:
            if cls.__module__.startswith("app."):
                return
            add(self, cls, *args, **kwargs)

        fastapi.FastAPI.add_middleware = skip_own
    return create_app(settings)


async def drive(
    asgi: Any,
    body: bytes,
    headers: dict[str, str],
    requests: int,
    batches: int,
    freeze: Callable[[], None] | None = None,
) -> list[float]:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    path, _, query = config.STEP_PATH.partition("?")
    scope_base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status: list[int] = []

    async def one() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await asgi(dict(scope_base), receive, send)

    # lifespan is not needed for the invocation path; warm up lazy imports and caches
    for _ in range(200):
        await one()
    if set(status) != {200}:
        raise SystemExit(f"unexpected statuses {set(status)}")
    if freeze is not None:
        freeze()  # what the app does once ready
    results = []
    for _ in range(batches):
        t0 = time.process_time()
        for _ in range(requests):
            await one()
        results.append((time.process_time() - t0) / requests * 1e6)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--profile", type=Path, help="write cProfile stats of one extra batch here")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default=None)
    args = parser.parse_args(argv)

    key = secrets.token_hex(32)
    # log lines go where the servers' go in the benchmark: a file, not a terminal
    devnull = open(os.devnull, "w")  # noqa: SIM115
    sys.stdout = sys.stderr = devnull
    try:
        return _measure(args, key)
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


def _measure(args: argparse.Namespace, key: str) -> int:
    asgi = build(args.variant, key)
    body = config.step_request_body()
    headers = config.signed_headers(body, key)
    loop_name = args.loop or ("asyncio" if args.variant == "baseline" else "uvloop")
    if loop_name == "uvloop":
        import uvloop

        runner: Callable[[Coroutine[Any, Any, list[float]]], list[float]] = uvloop.run
    else:
        runner = asyncio.run
    freeze = None
    if args.variant != "baseline":
        from app.main import freeze_startup_heap as freeze
    samples = runner(drive(asgi, body, headers, args.requests, args.batches, freeze))
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        runner(drive(asgi, body, headers, args.requests, 1, freeze))
        prof.disable()
        prof.dump_stats(args.profile)
    median = sorted(samples)[len(samples) // 2]
    print(
        f"{args.variant:24s} loop={loop_name:8s} min {min(samples):7.1f} us/request  median {median:7.1f}",
        file=sys.__stdout__,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
