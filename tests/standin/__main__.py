"""`python -m tests.standin`: flags named like `inngest start`'s (cmd/start/cmd.go), env INNGEST_* too."""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from tests.standin.server import Options, StandIn


def _env(name: str, default: str = "") -> str:
    return os.environ.get("INNGEST_" + name.upper().replace("-", "_"), default)


def parse(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m tests.standin", description=__doc__)
    p.add_argument("--host", default=_env("host", "127.0.0.1"))
    p.add_argument("--port", "-p", type=int, default=int(_env("port", "8288")))
    p.add_argument("--sdk-url", "-u", action="append", default=None, help="app serve URL to sync (repeatable)")
    p.add_argument("--signing-key", default=_env("signing-key"))
    p.add_argument("--event-key", action="append", default=None, help="accepted event key (repeatable)")
    p.add_argument("--poll-interval", type=float, default=float(_env("poll-interval", "0") or 0))
    p.add_argument("--retry-interval", type=float, default=float(_env("retry-interval", "0") or 0))
    p.add_argument("--queue-workers", type=int, default=int(_env("queue-workers", "100")))
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply sleeps, timeouts and backoff")
    p.add_argument("--log-level", default=_env("log-level", "warning"))
    a = p.parse_args(argv)
    sdk_urls = a.sdk_url or [u for u in _env("sdk-url").split(",") if u]
    event_keys = a.event_key or [k for k in _env("event-key").split(",") if k]
    # cmd/start: the signing key must be even-length hex and an event key is required.
    try:
        bytes.fromhex(a.signing_key)
    except ValueError:
        p.error("--signing-key must be even-length hex (e.g. openssl rand -hex 32)")
    if not a.signing_key or not event_keys:
        p.error("--signing-key and --event-key are required")
    logging.basicConfig(level=a.log_level.upper())
    return Options(
        port=a.port,
        host=a.host,
        sdk_urls=sdk_urls,
        signing_key=a.signing_key,
        event_keys=event_keys,
        poll_interval=a.poll_interval or 5.0,
        time_scale=a.time_scale,
        retry_interval=a.retry_interval,
        queue_workers=a.queue_workers,
    )


def main(argv: list[str] | None = None) -> None:
    opts = parse(argv)
    app = StandIn(opts).app()
    uvicorn.run(app, host=opts.host, port=opts.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
