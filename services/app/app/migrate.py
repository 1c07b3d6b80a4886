"""`python -m app migrate`: bring the ledger's schema to the newest revision (Alembic). Safe to repeat, and
safe to run from several places at once (PostgreSQL: an advisory lock serialises the runs)."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from app.db import sync_engine
from app.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision this build knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def upgrade(url: str) -> tuple[str | None, str]:
    """Upgrade to head; returns the revision before (as seen while holding the migration lock) and after."""
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            config = _config()
            config.attributes["connection"] = connection  # read by migrations/env.py
            command.upgrade(config, "head")
    finally:
        engine.dispose()
    return config.attributes.get("before"), head()


def run_migrate(settings: Settings) -> int:
    """The one-shot job: one line saying where the schema is now, or why it could not get there (exit 1)."""
    try:
        before, after = upgrade(settings.database)
    except SQLAlchemyError as exc:
        # The driver's message names the host and the reason, never the password.
        cause = getattr(exc, "orig", None) or exc
        reason = "; ".join(line.strip() for line in str(cause).splitlines() if line.strip())
        print(f"migrate: failed: {type(cause).__name__}: {reason}", file=sys.stderr)
        return 1
    print(
        f"migrate: schema at {after}" + (" (already up to date)" if before == after else f" (was {before or 'empty'})")
    )
    return 0
