"""Migrations from an empty database on both dialects, and what opening an old ledger does."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from producer.ledger import Ledger, LedgerError, migrate
from producer.ledger.tables import Base
from producer.ledger.upgrade import head
from tests.ledger.databases import postgres_schema

TABLES = {"tickets", "decisions", "human_labels", "review_items"}


def test_migrations_build_the_models_schema_from_empty(database_url: str) -> None:
    assert migrate(database_url) == head()
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
            context = MigrationContext.configure(conn)
            assert context.get_current_revision() == head()
            # The migrations and the models describe one schema: nothing left to generate.
            assert compare_metadata(context, Base.metadata) == []
            indexes = {i["name"] for i in inspect(conn).get_indexes("review_items")}
            assert "ix_review_items_task_state_created_at" in indexes
    finally:
        engine.dispose()


def test_migrating_again_changes_nothing(database_url: str) -> None:
    migrate(database_url)
    assert migrate(database_url) == head()


def test_the_embedded_sqlite_ledger_migrates_itself_on_first_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'ledger.sqlite3'}"
    with Ledger.open(url) as ledger:
        assert ledger.counts("category").waiting == 0
    assert (tmp_path / "deep" / "ledger.sqlite3").is_file()


def test_the_default_ledger_lives_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from producer.ledger import settings

    monkeypatch.delenv("TRIAGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path / "data"))
    settings.get_settings.cache_clear()
    try:
        with Ledger.open() as ledger:
            assert ledger.engine.url.database == str(tmp_path / "data" / "ledger.sqlite3")
            with ledger.engine.connect() as conn:
                mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
            assert (mode, busy) == ("wal", 30_000)
    finally:
        settings.get_settings.cache_clear()


def test_an_unmigrated_server_ledger_says_how_to_migrate() -> None:
    with postgres_schema() as url:
        with pytest.raises(LedgerError, match=r"revision none.*migrate"):
            Ledger.open(url)
        migrate(url)
        with Ledger.open(url) as ledger:
            assert ledger.counts("category").waiting == 0
