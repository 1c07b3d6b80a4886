"""`python -m app [serve|sync|doctor|migrate]`: one line per problem and exit code 2 for bad configuration."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from app.settings import EXIT_CONFIG, settings_or_exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "sync", "doctor", "migrate"],
        help="serve (default): run the API; sync: one verified registration; doctor: check the setup; "
        "migrate: bring the database schema up to date",
    )
    parser.add_argument("--reload", action="store_true", help="serve only: restart on code changes (dev mode only)")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    if args.reload and (args.command != "serve" or settings.inngest_mode.value != "dev"):
        # A reloader watches and re-imports code: never in production.
        print("config error: --reload: only for `serve` with INNGEST_MODE=dev", file=sys.stderr)
        return EXIT_CONFIG
    if args.command != "serve":
        # One-shot commands keep their metrics in memory; never write into a server's multiprocess dir.
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    if args.command == "serve":
        from app.server import serve

        serve(settings, reload=args.reload)
        return 0
    if args.command == "sync":
        from app.sync import run_sync

        return asyncio.run(run_sync(settings))
    if args.command == "migrate":
        from app.migrate import run_migrate

        return run_migrate(settings)
    from app.doctor import run_doctor

    return asyncio.run(run_doctor(settings))
