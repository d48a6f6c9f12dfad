"""Alembic run from our code: `migrate(url)` brings a ledger's schema to the newest revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from producer.ledger.engine import create, mapped_errors
from producer.ledger.settings import get_settings

#: The revisions, shipped inside the package (so in the wheel too).
MIGRATIONS = Path(__file__).with_name("migrations")
#: PostgreSQL advisory lock held while migrating, so two processes starting at once take turns
#: (SQLite: the migration's BEGIN IMMEDIATE does the same).
LOCK_KEY = 0x7472_6961_6765  # "triage"


def migrate(url: str | None = None) -> str:
    """Upgrade the ledger at `url` (default: the settings') to the newest revision; returns it.
    Safe to run while other processes use the ledger, and again when already there."""
    settings = get_settings()
    engine = create(
        url or settings.resolved_database_url, busy_timeout_s=settings.database_busy_timeout_s
    )
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return head()


def upgrade(engine: Engine) -> None:
    """`migrate` on an engine the caller holds."""
    config = _config()
    with mapped_errors(), engine.connect() as connection:
        config.attributes["connection"] = connection  # env.py migrates on it
        command.upgrade(config, "head")


def current(engine: Engine) -> str | None:
    """The revision the ledger's schema is at (None: an empty database)."""
    with mapped_errors(), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    """The newest revision this code knows."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None, f"no migrations in {MIGRATIONS}"
    return found


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config
