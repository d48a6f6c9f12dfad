"""The ledger: the store of record of what the service decided and what people changed.

    from producer.ledger import Ledger
    ledger = Ledger.open()          # TRIAGE_DATABASE_URL, else SQLite under TRIAGE_DATA_DIR
    ledger.record([(ticket, result)])            # the write-back path, a batch at a time
    for entry in ledger.queue("category"): ...   # the review desk
    rows = ledger.export("category")             # the training set

Tickets, every decision (with versions and evidence), every person's label (who, when, through
what) and the review desk's items, in SQLite (embedded default) or PostgreSQL, through
SQLAlchemy with Alembic migrations (`migrate(url)`). Redis stays the broker and hot cache.
Importing this package loads no SQLAlchemy: `Ledger` and `migrate` load it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from producer.ledger.errors import LedgerError, LedgerUnavailable
from producer.ledger.records import (
    Confusion,
    Counts,
    DecisionRecord,
    ExportRow,
    HumanLabelRecord,
    Interval,
    ItemView,
    QueueEntry,
    ReviewItem,
    Stats,
    Suggestion,
    TicketRecord,
    VersionStats,
)
from producer.ledger.settings import LedgerSettings, get_settings

if TYPE_CHECKING:
    from producer.ledger.store import Ledger
    from producer.ledger.upgrade import migrate

__all__ = [
    "Confusion",
    "Counts",
    "DecisionRecord",
    "ExportRow",
    "HumanLabelRecord",
    "Interval",
    "ItemView",
    "Ledger",
    "LedgerError",
    "LedgerSettings",
    "LedgerUnavailable",
    "QueueEntry",
    "ReviewItem",
    "Stats",
    "Suggestion",
    "TicketRecord",
    "VersionStats",
    "get_settings",
    "migrate",
]


def __getattr__(name: str) -> Any:
    # SQLAlchemy and Alembic load only when the ledger is used, not when the HTTP app imports
    # this package for its types.
    if name == "Ledger":
        from producer.ledger.store import Ledger

        return Ledger
    if name == "migrate":
        from producer.ledger.upgrade import migrate

        return migrate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
