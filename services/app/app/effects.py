"""Exactly-once side effects keyed by (run, step), across processes and replicas sharing one database.

The server may call a step again after a crash or a lost response, on any replica. `apply` claims the key
with `INSERT ... ON CONFLICT DO NOTHING` first: the first writer gets the row and performs the effect in the
same transaction (its business writes included); a concurrent attempt waits on that row and, once the first
commits, reads the stored result instead. If the transaction fails (database gone, crash), nothing of it
remains: neither the record nor the business write, and the server's retry performs it then.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.metrics import SIDE_EFFECTS
from app.schema import side_effects

Effect = Callable[[AsyncConnection], Awaitable[Any]]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Ledger:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Both dialects spell the claim the same way; SQLAlchemy only needs to know which one it renders.
        self._insert: Callable[..., Any] = sqlite.insert
        if engine.dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql  # ~45 ms of startup a SQLite deployment does not pay

            self._insert = postgresql.insert
        self._sqlite = engine.dialect.name == "sqlite"
        self._writer_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _one_writer(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """SQLite has one writer at a time, and its busy handler polls with growing sleeps: with hundreds of
        steps at once some waited past the server's call timeout. Queue this process's writers fairly
        instead (one lock per event loop); other processes still wait on the file lock."""
        if not self._sqlite:
            return contextlib.nullcontext()
        loop = asyncio.get_running_loop()
        lock = self._writer_locks.get(loop)
        if lock is None:
            lock = self._writer_locks[loop] = asyncio.Lock()
        return lock

    async def apply(self, run_id: str, step: str, kind: str, effect: Effect) -> Any:
        """Perform `await effect(conn)` once for (run_id, step); `effect` writes through `conn`, atomically
        with the record. Returns the effect's result (JSON-serialisable), the stored one on a repeat."""
        key = (side_effects.c.run_id == run_id) & (side_effects.c.step == step)
        async with self._one_writer(), self.engine.begin() as conn:
            claim = self._insert(side_effects).values(run_id=run_id, step=step, kind=kind, created_at=_now())
            # RETURNING says whether this insert won; rowcount is not reliable across drivers here.
            claimed = await conn.execute(claim.on_conflict_do_nothing().returning(side_effects.c.run_id))
            if claimed.first() is not None:
                result = await effect(conn)
                await conn.execute(update(side_effects).where(key).values(result=result))
                outcome = "performed"
            else:
                result = (await conn.execute(select(side_effects.c.result).where(key))).scalar_one()
                outcome = "replayed"
        # Counted after the commit: a performed effect is one that is durably recorded.
        SIDE_EFFECTS.labels(kind, outcome).inc()
        return result

    async def count(self, kind: str | None = None) -> int:
        query = select(func.count()).select_from(side_effects)
        if kind is not None:
            query = query.where(side_effects.c.kind == kind)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def purge_older_than(self, age: datetime.timedelta) -> int:
        async with self._one_writer(), self.engine.begin() as conn:
            purged = await conn.execute(delete(side_effects).where(side_effects.c.created_at < _now() - age))
            return int(purged.rowcount)
