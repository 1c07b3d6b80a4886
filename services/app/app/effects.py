"""Idempotent side effects keyed by (run, step).

The server may call a step again after a crash or a lost response, so every side effect goes through
`apply`: the first call for a key performs it and stores its result in the same transaction; any repeat
returns the stored result without performing it again. SQLite in WAL mode works across worker processes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def _apply(self, key: str, kind: str, effect: Callable[[sqlite3.Connection], Any]) -> Any:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # serialises concurrent attempts at the same key
            row = db.execute("SELECT result FROM effects WHERE key = ?", (key,)).fetchone()
            if row is not None:
                db.execute("ROLLBACK")
                return json.loads(row[0])
            result = effect(db)
            db.execute(
                "INSERT INTO effects (key, kind, result, created_at) VALUES (?, ?, ?, ?)",
                (key, kind, json.dumps(result), time.time()),
            )
            db.execute("COMMIT")
            return result
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    async def apply(self, run_id: str, step: str, kind: str, effect: Callable[[sqlite3.Connection], Any]) -> Any:
        """Perform `effect(db)` once for (run_id, step); `effect` may write to `db` atomically with the record."""
        return await asyncio.to_thread(self._apply, f"{run_id}:{step}", kind, effect)

    def count(self, kind: str | None = None) -> int:
        with self._connect() as db:
            if kind is None:
                return int(db.execute("SELECT count(*) FROM effects").fetchone()[0])
            return int(db.execute("SELECT count(*) FROM effects WHERE kind = ?", (kind,)).fetchone()[0])

    async def purge_older_than(self, seconds: float) -> int:
        def purge() -> int:
            with self._connect() as db:
                return db.execute("DELETE FROM effects WHERE created_at < ?", (time.time() - seconds,)).rowcount

        return await asyncio.to_thread(purge)
