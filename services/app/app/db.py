"""The ledger's database: one DATABASE_URL, two drivers (psycopg 3 for PostgreSQL, aiosqlite for SQLite)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

# Seconds to wait for a connection or a lock before the step fails (retriably) instead of hanging.
CONNECT_TIMEOUT = 5
SQLITE_BUSY_TIMEOUT = 30


def _driver_url(url: str, *, asynchronous: bool) -> URL:
    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        # psycopg 3 serves both the async engine and the migrations' sync one.
        return parsed.set(drivername="postgresql+psycopg")
    return parsed.set(drivername="sqlite+aiosqlite" if asynchronous else "sqlite")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_revision(url: str) -> str | None:
    """The Alembic revision a SQLite file is at (None: no file or never migrated), read without Alembic."""
    path = make_url(url).database
    if not path or not Path(path).exists():
        return None
    with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT)) as db:
        try:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:  # no such table
            return None
    return str(row[0]) if row else None


def _connect_args(url: str) -> dict[str, Any]:
    if is_sqlite(url):
        return {"timeout": SQLITE_BUSY_TIMEOUT}
    return {"connect_timeout": CONNECT_TIMEOUT}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers never block the one writer, and several worker processes share the file safely.
    # synchronous=NORMAL (SQLite's advice for WAL): no fsync per commit; a commit survives a crash of the
    # app, and a power loss can only drop the latest ones whole (record and business write together).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def async_engine(url: str) -> AsyncEngine:
    """The app's engine. pre-ping: after a database restart, dead pooled connections are replaced."""
    if is_sqlite(url):
        # A SQLite connection is a file handle: opening one per transaction is cheap, and no pooled
        # connection stays tied to the event loop that opened it.
        engine = create_async_engine(
            _driver_url(url, asynchronous=True), connect_args=_connect_args(url), poolclass=NullPool
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(_driver_url(url, asynchronous=True), connect_args=_connect_args(url), pool_pre_ping=True)


def sync_engine(url: str) -> Engine:
    """For the migrations (Alembic runs synchronously). Creates a SQLite file's directory."""
    if is_sqlite(url) and (path := make_url(url).database):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(_driver_url(url, asynchronous=False), connect_args=_connect_args(url))
    if is_sqlite(url):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine
