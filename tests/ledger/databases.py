"""Fresh, empty databases for the ledger's tests: a SQLite file, or a PostgreSQL schema of the
test's own at TRIAGE_TEST_DATABASE_URL, created and dropped here so parallel runs never meet."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

#: The machine's PostgreSQL (trust auth); `./dev.sh test` starts one when none answers.
POSTGRES_URL = os.environ.get(
    "TRIAGE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DIALECTS = ("sqlite", "postgresql")


@contextmanager
def fresh_database(dialect: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database of `dialect`, gone afterwards."""
    if dialect == "sqlite":
        yield f"sqlite:///{directory / 'ledger.sqlite3'}"
        return
    with postgres_schema() as url:
        yield url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections see only a new schema (``search_path``), dropped afterwards."""
    base = make_url(POSTGRES_URL)
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except exc.OperationalError as error:
        admin.dispose()
        pytest.fail(
            f"no PostgreSQL answers at {base!r} ({str(error.orig).strip()}): set "
            "TRIAGE_TEST_DATABASE_URL, or run ./dev.sh test, which starts one"
        )
    try:
        url = base.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
