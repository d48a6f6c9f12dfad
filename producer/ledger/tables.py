"""The ledger's tables as SQLAlchemy 2 models; the migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from producer.schemas import MAX_ID_CHARS, MAX_SUBJECT_CHARS

#: Index and constraint names the same on every dialect, so migrations can name them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}
NAME = 64  # task and source names (`producer.schemas.Name`)
REVISION = 128
PERSON = 256
LABEL = 256
#: 64-bit ids on PostgreSQL (decisions outgrow 2^31); SQLite's rowid is 64-bit as INTEGER.
ID = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. SQLite keeps no zone: values go in as naive UTC, so
    string comparison orders them, and come back marked UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class TicketRow(Base):
    """A ticket as last seen; one row per (source, ticket_id), whatever the task."""

    __tablename__ = "tickets"
    __table_args__ = (UniqueConstraint("source", "ticket_id"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(NAME))
    ticket_id: Mapped[str] = mapped_column(String(MAX_ID_CHARS))
    subject: Mapped[str] = mapped_column(String(MAX_SUBJECT_CHARS))
    body: Mapped[str] = mapped_column(Text)
    #: Write-back coordinates from the verified channel (`Ticket.origin`); None when it had none.
    origin: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class DecisionRow(Base):
    """Every decision, once per (task, source, ticket_id, revision)."""

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("task", "source", "ticket_id", "revision"),
        Index(None, "task", "decided_at"),  # stats over a window
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    task: Mapped[str] = mapped_column(String(NAME))
    source: Mapped[str] = mapped_column(String(NAME))
    ticket_id: Mapped[str] = mapped_column(String(MAX_ID_CHARS))
    revision: Mapped[str] = mapped_column(String(REVISION))
    label: Mapped[str | None] = mapped_column(String(LABEL))
    confidence: Mapped[float] = mapped_column(Float)
    decided_by: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    model_version: Mapped[str | None] = mapped_column(String(PERSON))
    adapter_version: Mapped[str | None] = mapped_column(String(PERSON))
    versions: Mapped[dict[str, Any]]
    neighbours: Mapped[list[Any]]
    stages: Mapped[list[Any]]
    suggestions: Mapped[list[Any]]
    cost_usd: Mapped[float] = mapped_column(Float)
    decided_at: Mapped[datetime]
    #: None: the write-back applied it. Else why it was applied nowhere (the write-back's gate,
    #: `worker.writeback.decide`: ``kept-human-label``, ``stale-revision``): kept for the audit
    #: trail, never the ticket's label in an export, never an item on the desk.
    superseded: Mapped[str | None] = mapped_column(String(32))


class HumanLabelRow(Base):
    """A person's label: who, through what, when, and what the model had said before."""

    __tablename__ = "human_labels"
    __table_args__ = (
        UniqueConstraint("task", "source", "ticket_id", "revision"),
        Index(None, "task", "labelled_at"),  # stats and the confusion table over a window
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    task: Mapped[str] = mapped_column(String(NAME))
    source: Mapped[str] = mapped_column(String(NAME))
    ticket_id: Mapped[str] = mapped_column(String(MAX_ID_CHARS))
    revision: Mapped[str] = mapped_column(String(REVISION))
    label: Mapped[str] = mapped_column(String(LABEL))
    labelled_by: Mapped[str] = mapped_column(String(PERSON))
    via: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    labelled_at: Mapped[datetime]
    model_label: Mapped[str | None] = mapped_column(String(LABEL))
    model_adapter_version: Mapped[str | None] = mapped_column(String(PERSON))


class ReviewItemRow(Base):
    """An item on the desk: a ticket the cascade could not decide, or an audit of one it did."""

    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("task", "source", "ticket_id", "revision", "kind"),
        Index(None, "task", "state", "created_at"),  # the queue, oldest first
        Index(None, "task", "source", "ticket_id", "state"),  # a person's label resolves these
        CheckConstraint("kind IN ('review', 'audit')", name="kind"),
        CheckConstraint(
            "why IN ('unsure', 'frontier_refused', 'budget', 'disagreement', 'no_frontier',"
            " 'audit', 'other')",
            name="why",
        ),
        CheckConstraint("state IN ('open', 'claimed', 'resolved', 'skipped')", name="state"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    task: Mapped[str] = mapped_column(String(NAME))
    source: Mapped[str] = mapped_column(String(NAME))
    ticket_id: Mapped[str] = mapped_column(String(MAX_ID_CHARS))
    revision: Mapped[str] = mapped_column(String(REVISION))
    kind: Mapped[str] = mapped_column(String(16))
    why: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(PERSON))
    claim_expires_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(PERSON))
    resolved_at: Mapped[datetime | None]
    answer_label: Mapped[str | None] = mapped_column(String(LABEL))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
