"""One ledger, several processes: a forked worker opens its own connections, readers never wait
for a writer on SQLite, and a writer held up past the busy timeout gets a retryable error."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from producer.ledger import Ledger, LedgerUnavailable
from tests.ledger.build import ticket, unsure


def test_a_forked_child_uses_connections_of_its_own(ledger: Ledger) -> None:
    ledger.record([(ticket("parent"), unsure(ticket("parent"), "refund"))])
    parents = _session(ledger)  # the pooled connection the child inherits
    pid = os.fork()
    if pid == 0:  # the child, as a Celery prefork worker would be
        code = 1
        try:
            ledger.record([(ticket("child"), unsure(ticket("child"), "refund"))])
            code = 0 if parents is None or _session(ledger) != parents else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child wrote on its parent's connection"
    assert [e.item.ticket_id for e in ledger.queue("category")] == ["parent", "child"]


def _session(ledger: Ledger) -> int | None:
    """PostgreSQL's backend pid of the connection the pool hands out (SQLite: None, it has no
    server session to tell apart)."""
    with ledger.engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            return None
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def test_sqlite_readers_never_wait_and_a_blocked_writer_may_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from producer.ledger import settings

    monkeypatch.setenv("TRIAGE_DATABASE_BUSY_TIMEOUT_S", "0.3")
    settings.get_settings.cache_clear()
    path = tmp_path / "ledger.sqlite3"
    try:
        with Ledger.open(f"sqlite:///{path}") as ledger:
            t = ticket("1")
            ledger.record([(t, unsure(t, "refund"))])
            other = sqlite3.connect(path, isolation_level=None)  # another process's writer
            other.execute("BEGIN IMMEDIATE")
            try:
                started = time.monotonic()
                assert ledger.counts("category").open == 1
                assert time.monotonic() - started < 0.25
                with pytest.raises(LedgerUnavailable, match="locked"):
                    ledger.claim(1, "ann")
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert ledger.claim(1, "ann")
    finally:
        settings.get_settings.cache_clear()
