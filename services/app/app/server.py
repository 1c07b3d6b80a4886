"""Run the app under uvicorn with uvloop + httptools, N workers and a graceful shutdown."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import typing
from collections.abc import Sequence

import uvicorn

from app.http_limits import ConnectionLimits, LimitedConfig, connection_cap, raise_open_file_limit
from app.logs import configure_logging, logging_config
from app.settings import Settings

if typing.TYPE_CHECKING:
    from app.functions.deps import Builder


def _prepare_metrics_dir(settings: Settings, workers: bool) -> None:
    # prometheus-client reads this variable at import: set it (or clear it) before any worker imports it.
    if workers:
        path = settings.prometheus_multiproc_dir
        shutil.rmtree(path, ignore_errors=True)  # stale files from a previous run would be summed in
        path.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    else:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def _serve_metrics(settings: Settings, workers: bool) -> None:
    # Here, in the launching process: with workers (or the reloader) it outlives them and sums their files.
    if not settings.metrics_port:
        return
    from app.metrics import serve_metrics  # after _prepare_metrics_dir: prometheus-client reads it at import

    try:
        serve_metrics(settings.host, settings.metrics_port, settings.prometheus_multiproc_dir if workers else None)
    except OSError as exc:
        where = f"{settings.host}:{settings.metrics_port}"
        logging.getLogger("app").error("METRICS_PORT: cannot listen on %s: %s", where, exc.strerror or exc)
        raise SystemExit(1) from None


def _migrate_embedded_database(settings: Settings) -> None:
    # The SQLite default is one file on this host: bring it up to date here, once, before any worker starts,
    # so `python -m app` runs with nothing else set up. A shared PostgreSQL is migrated by its own one-shot
    # `python -m app migrate` before the app starts (compose, Kubernetes).
    from app.db import is_sqlite, sqlite_revision
    from app.schema import HEAD_REVISION

    if is_sqlite(settings.database) and sqlite_revision(settings.database) != HEAD_REVISION:
        from app.migrate import upgrade  # Alembic takes a moment to load: only when there is work

        logging.getLogger("alembic").setLevel(logging.WARNING)  # one INFO line per plugin otherwise
        upgrade(settings.database)


def _connection_limits(settings: Settings) -> ConnectionLimits:
    # Workers inherit the raised limit; the connection cap leaves descriptors for the process's own work.
    max_connections = connection_cap(raise_open_file_limit())
    if max_connections < settings.http_limit_concurrency:
        logging.getLogger("app.http").warning(
            "the open-file limit allows %d connections per worker, fewer than HTTP_LIMIT_CONCURRENCY (%d): "
            "raise nofile (ulimit -n)",
            max_connections,
            settings.http_limit_concurrency,
        )
    return ConnectionLimits(
        header_timeout=settings.http_header_timeout_seconds,
        body_timeout=settings.http_body_timeout_seconds,
        max_header_bytes=settings.http_max_header_bytes,
        max_headers=settings.http_max_headers,
        limit_concurrency=settings.http_limit_concurrency,
        max_connections=max_connections,
    )


def serve(settings: Settings, builders: Sequence[Builder] | None = None, reload: bool = False) -> None:
    """Serve the app; `builders` replaces the function list (single worker only: workers re-import it).
    `reload` (dev mode): one worker, restarted on every change to the app's package."""
    if builders is not None and (settings.web_concurrency > 1 or reload):
        raise ValueError("a custom function list needs WEB_CONCURRENCY=1 and no reload")
    configure_logging(settings.log_level)
    # Worker processes hold the metrics: uvicorn's workers, or the one the reloader restarts on every change.
    workers = settings.web_concurrency > 1 or reload
    _prepare_metrics_dir(settings, workers)
    _migrate_embedded_database(settings)
    _serve_metrics(settings, workers)
    options: dict[str, typing.Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        # No WebSocket endpoints, and no WebSocket library in the image: an Upgrade request is answered as
        # plain HTTP/1.1 (never a 101), whatever happens to be installed (app.http_limits logs it).
        "ws": "none",
        "lifespan": "on",
        "timeout_keep_alive": settings.http_idle_timeout_seconds,
        "timeout_graceful_shutdown": int(settings.graceful_shutdown_timeout) or None,
        "log_config": logging_config(settings.log_level),
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,
    }
    limits = _connection_limits(settings)
    if reload:
        # The reloader imports the app by name in each process it starts.
        package = os.path.dirname(os.path.abspath(__file__))
        config = LimitedConfig(
            "app.main:create_app", factory=True, reload=True, reload_dirs=[package], limits=limits, **options
        )
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.supervisors.ChangeReload(
                config, target=uvicorn.Server(config).run, sockets=[config.bind_socket()]
            ).run()
        return
    from app.main import create_app  # only now: prometheus-client must see the metrics dir decision

    config = LimitedConfig(
        # One worker gets the validated settings object; several each call the factory on the same environment.
        "app.main:create_app" if settings.web_concurrency > 1 else create_app(settings, builders),
        factory=settings.web_concurrency > 1,
        workers=settings.web_concurrency,
        limits=limits,
        **options,
    )
    server = uvicorn.Server(config)
    if settings.web_concurrency > 1:
        sock = config.bind_socket()
        uvicorn.supervisors.Multiprocess(config, sockets=[sock]).run()
    else:
        server.run()
