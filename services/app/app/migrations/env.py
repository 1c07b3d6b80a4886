"""Alembic environment: runs on the connection `app.migrate` opened (never reads alembic.ini or the env)."""

from __future__ import annotations

from alembic import context
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from app.schema import metadata

# Any constant shared by every `python -m app migrate`: two runs at once (an init container per pod) wait.
_LOCK_KEY = 0x1ED6E5


def run() -> None:
    connection = context.config.attributes["connection"]
    with connection.begin():
        if connection.dialect.name == "postgresql":
            # Held until this transaction commits; the version check below happens after it.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        # Read under the lock: of two runs at once, the one that waited reports "already up to date".
        context.config.attributes["before"] = MigrationContext.configure(connection).get_current_revision()
        # render_as_batch: SQLite alters tables by copying them.
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
