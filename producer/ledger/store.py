"""`Ledger`: the store of record over one SQLAlchemy engine, written in the write-back's batches."""

from __future__ import annotations

import functools
import logging
import os
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from producer.ledger import export, review, stats, upgrade, writes
from producer.ledger.engine import READ_ONLY, create, mapped_errors
from producer.ledger.errors import LedgerError
from producer.ledger.records import Counts, ExportRow, ItemView, QueueEntry, Stats
from producer.ledger.settings import get_settings
from producer.schemas import Ticket, TriageResult

log = logging.getLogger(__name__)

#: How long a reviewer holds an item by default.
CLAIM_TTL_S = 600.0
#: Share of tickets `export` keeps out of training, for choosing epochs and thresholds.
HOLDOUT = 0.1


class Ledger:
    """Tickets, decisions, people's labels and the review desk, in SQLite or PostgreSQL.

    Thread-safe (a pool of connections); one per process: `open` it in the process that uses
    it (a forked child drops the parent's connections on its own). Every method is one
    transaction; `LedgerUnavailable` (retryable) when the database is locked or away.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})
        _hook_fork()
        _open.add(self)

    @classmethod
    def open(cls, url: str | None = None, *, upgrade_schema: bool | None = None) -> Ledger:
        """The ledger at `url` (default ``TRIAGE_DATABASE_URL``, else SQLite under
        ``TRIAGE_DATA_DIR``). `upgrade_schema` (default: for SQLite) migrates it to the newest
        revision first; otherwise a schema behind this code is a `LedgerError` that says how to
        migrate it."""
        settings = get_settings()
        engine = create(
            url or settings.resolved_database_url, busy_timeout_s=settings.database_busy_timeout_s
        )
        try:
            if upgrade_schema is None:
                upgrade_schema = engine.dialect.name == "sqlite"
            if upgrade_schema:
                upgrade.upgrade(engine)
            elif (at := upgrade.current(engine)) != (newest := upgrade.head()):
                raise LedgerError(
                    f"the ledger at {engine.url!r} is at schema revision {at or 'none'}, this "
                    f"code needs {newest}: run `producer.ledger.migrate(url)` (the CLI's upgrade)"
                )
        except BaseException:
            engine.dispose()
            raise
        log.info("ledger open at %r", engine.url)
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the write-back path ------------------------------------------------------------------

    def record(
        self,
        decisions: Sequence[tuple[Ticket, TriageResult]],
        *,
        superseded: str | None = None,
        audits: Sequence[tuple[Ticket, TriageResult]] = (),
    ) -> int:
        """Record a batch of applied results, once each (idempotent on task, source, id,
        revision): the ticket as last seen, the decision, a person's label (``decided_by ==
        "human"``, which resolves the ticket's waiting items of that task) and, for
        ``needs_review``, an item on the desk (none once a person has labelled the ticket).

        `superseded`: these results were applied nowhere, and why (the write-back's verdict,
        ``kept-human-label`` or ``stale-revision``). They are recorded for the audit trail (a
        person's label with them) but open no item, resolve none, and are never a ticket's
        model label in `export`.

        `audits`: auto labels among `decisions` that also go to the desk (`open_audit`), in the
        same transaction: a write-back batch is one commit. Returns how many audit items were
        new."""
        checked = [_auditable(result) for _, result in audits]
        if checked and superseded is not None:
            raise ValueError("a superseded result is applied nowhere: it is never audited")
        with self._write() as conn:
            writes.record(conn, decisions, superseded=superseded)
            return sum(writes.open_item(conn, result, "audit", "audit") for result in checked)

    def open_audit(self, ticket: Ticket, result: TriageResult) -> bool:
        """Record an auto-labelled result and put it on the desk as an audit (the label still
        ships). True when a new audit item was opened."""
        _auditable(result)
        with self._write() as conn:
            writes.record(conn, [(ticket, result)])
            return writes.open_item(conn, result, "audit", "audit")

    # -- the desk -----------------------------------------------------------------------------

    def queue(
        self,
        task: str,
        *,
        reviewer: str | None = None,
        source: str | None = None,
        label: str | None = None,
        limit: int = 50,
        now: datetime | None = None,
    ) -> list[QueueEntry]:
        """Waiting items of `task`, oldest first: open ones, expired claims, and `reviewer`'s
        own; never an item someone else holds. `label` filters on the model's suggestion."""
        with self._read() as conn:
            return review.queue(
                conn,
                task,
                reviewer=reviewer,
                source=source,
                label=label,
                limit=limit,
                now=_now(now),
            )

    def counts(self, task: str, *, now: datetime | None = None) -> Counts:
        """How many items of `task` are open, claimed (unexpired), resolved and skipped."""
        with self._read() as conn:
            return review.counts(conn, task, now=_now(now))

    def claim(
        self,
        item_id: int,
        reviewer: str,
        ttl_s: float = CLAIM_TTL_S,
        now: datetime | None = None,
    ) -> bool:
        """Hold an item for `ttl_s`; True when `reviewer` now holds it. It is taken when open,
        when its claim expired, or when `reviewer` holds it already (which extends the claim);
        of two reviewers claiming at once, exactly one gets it."""
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        with self._write() as conn:
            return review.claim(conn, item_id, reviewer, ttl_s, _now(now))

    def release(self, item_id: int, reviewer: str) -> bool:
        """Give back `reviewer`'s claim: the item is open again."""
        with self._write() as conn:
            return review.release(conn, item_id, reviewer)

    def skip(
        self, item_id: int, reviewer: str, *, note: str | None = None, now: datetime | None = None
    ) -> bool:
        """Take the item off the desk without an answer; only the claimant may."""
        values = {"state": "skipped", "note": note, "resolved_at": _now(now)}
        with self._write() as conn:
            return review.close(conn, item_id, reviewer, values)

    def resolve(
        self,
        item_id: int,
        reviewer: str,
        label: str,
        note: str | None = None,
        *,
        now: datetime | None = None,
    ) -> bool:
        """Answer the item with `label`; only the claimant may (False otherwise). The person's
        label itself travels the write-back path (`HumanLabel.as_writeback`), which records it
        here with every other target."""
        values = {
            "state": "resolved",
            "answer_label": label,
            "note": note,
            "resolved_at": _now(now),
        }
        with self._write() as conn:
            return review.close(conn, item_id, reviewer, values)

    def item(self, item_id: int) -> ItemView | None:
        """An item with its ticket, the decision it is about (neighbour ids, suggestions,
        stages) and the people's labels of that ticket; None when there is no such item."""
        with self._read() as conn:
            return review.item(conn, item_id)

    # -- what the ledger tells ----------------------------------------------------------------

    def export(
        self, task: str, *, holdout: float = HOLDOUT, humans_only: bool = False
    ) -> Iterator[ExportRow]:
        """The training set of `task`, streamed in (source, ticket id) order: each ticket's latest
        person's label, else its latest model decision's label when that was auto-labelled; the
        split is fixed by a hash of the ticket's identity (`export.split_of`)."""
        if not 0.0 <= holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {holdout}")
        with self._read() as conn:
            yield from export.export(conn, task, holdout=holdout, humans_only=humans_only)

    def stats(
        self,
        task: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        now: datetime | None = None,
        top: int = 10,
    ) -> Stats:
        """Quality of `task` over [since, until) (default: the last 7 days) per adapter version,
        the desk's depth and age now, and the `top` corrections people made most."""
        at = _now(now)
        until = until or at
        since = since or until - timedelta(days=7)
        with self._read() as conn:
            return stats.stats(conn, task, since=since, until=until, now=at, top=top)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with mapped_errors(), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with mapped_errors(), self._reader.begin() as conn:
            yield conn


def _auditable(result: TriageResult) -> TriageResult:
    if result.status != "labelled" or result.decided_by == "human":
        raise ValueError("only a model's auto label is audited")
    return result


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


_open: weakref.WeakSet[Ledger] = weakref.WeakSet()


@functools.cache
def _hook_fork() -> None:
    os.register_at_fork(after_in_child=_drop_pools)


def _drop_pools() -> None:
    # A forked child must not use its parent's pooled connections (both would talk on one
    # socket): it drops them, unclosed, and opens its own when it first needs one.
    for ledger in list(_open):
        ledger.engine.dispose(close=False)
