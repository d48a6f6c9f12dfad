"""The ledger's SQLAlchemy engine: SQLite shared by several processes (WAL, a busy timeout,
writers that queue instead of failing) or PostgreSQL through psycopg 3; errors mapped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

from producer.ledger.errors import LedgerError, LedgerUnavailable

#: Execution option that marks a read-only transaction (SQLite then begins DEFERRED).
READ_ONLY = "ledger_read_only"


def create(url: str, *, busy_timeout_s: float) -> Engine:
    """An engine for `url` (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": busy_timeout_s}
        )
        _share_sqlite(engine, busy_timeout_s)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise LedgerError(f"the ledger speaks SQLite and PostgreSQL, not {parsed.drivername}")
    # pre_ping: a pooled connection the server closed (restart, idle timeout) is replaced.
    return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def insert(engine_or_conn: Engine | Connection, table: Any) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which has ON CONFLICT (DO NOTHING, DO UPDATE) on both."""
    if engine_or_conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@contextmanager
def mapped_errors() -> Iterator[None]:
    """SQLAlchemy's errors as the service's: unavailable (retry) or a permanent `LedgerError`."""
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        # Locked past the busy timeout, a deadlock victim, a lost connection, a full pool.
        raise LedgerUnavailable(f"the ledger did not answer: {_short(error)}") from error
    except exc.SQLAlchemyError as error:
        raise LedgerError(f"the ledger refused the call: {_short(error)}") from error


def _share_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We send BEGIN ourselves (below): pysqlite's own begins deferred, and late.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer, nor it them, across processes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint, safe in WAL
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads and then writes gets "database is locked" at once
        # when another process writes, whatever the busy timeout: writers take the lock first.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def _short(error: exc.SQLAlchemyError) -> str:
    """The driver's message without the statement and parameters (they may hold ticket text)."""
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
