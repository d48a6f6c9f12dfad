"""Alembic's environment for the ledger. `producer.ledger.migrate` hands it a connection; the
``alembic`` command line (to write a revision) reaches the ledger of TRIAGE_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from producer.ledger.engine import create
from producer.ledger.settings import get_settings
from producer.ledger.tables import Base
from producer.ledger.upgrade import LOCK_KEY


def _migrate(connection: Connection) -> None:
    # One transaction for every revision: a failed migration leaves the schema as it was
    # (PostgreSQL and SQLite both run DDL in a transaction).
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite alters a table by copying it: future revisions need batch mode there.
            render_as_batch=connection.dialect.name == "sqlite",
            transactional_ddl=True,
        )
        context.run_migrations()


def _main() -> None:
    settings = get_settings()
    if context.is_offline_mode():
        context.configure(
            url=settings.resolved_database_url,
            target_metadata=Base.metadata,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    given = context.config.attributes.get("connection")
    if given is not None:
        _migrate(given)
        return
    engine = create(settings.resolved_database_url, busy_timeout_s=settings.database_busy_timeout_s)
    try:
        with engine.connect() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


_main()
