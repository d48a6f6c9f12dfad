"""The desk's queue and claims: one conditional UPDATE per change, so two reviewers racing for
the same item settle in the database (SQLite and PostgreSQL alike), never in our code."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, update
from sqlalchemy.engine import Connection

from producer.ledger import rows
from producer.ledger.records import Counts, ItemView, QueueEntry
from producer.ledger.tables import DecisionRow, HumanLabelRow, ReviewItemRow, TicketRow

R = ReviewItemRow
ITEMS, TICKETS = ReviewItemRow.__table__, TicketRow.__table__
DECISIONS, HUMAN_LABELS = DecisionRow.__table__, HumanLabelRow.__table__


def queue(
    conn: Connection,
    task: str,
    *,
    reviewer: str | None,
    source: str | None,
    label: str | None,
    limit: int,
    now: datetime,
) -> list[QueueEntry]:
    """`Ledger.queue`."""
    decision = and_(
        DecisionRow.task == R.task,
        DecisionRow.source == R.source,
        DecisionRow.ticket_id == R.ticket_id,
        DecisionRow.revision == R.revision,
    )
    ticket = and_(TicketRow.source == R.source, TicketRow.ticket_id == R.ticket_id)
    stmt = (
        select(ITEMS, TicketRow.subject, DecisionRow.label, DecisionRow.confidence)
        .select_from(ITEMS)
        .outerjoin(TicketRow, ticket)
        .outerjoin(DecisionRow, decision)
        .where(R.task == task, R.state.in_(("open", "claimed")), _takeable(reviewer, now))
        .order_by(R.created_at, R.id)
        .limit(limit)
    )
    if source is not None:
        stmt = stmt.where(R.source == source)
    if label is not None:
        stmt = stmt.where(DecisionRow.label == label)
    return [
        QueueEntry(rows.item(row), row.subject or "", row.label, row.confidence)
        for row in conn.execute(stmt)
    ]


def counts(conn: Connection, task: str, *, now: datetime) -> Counts:
    """`Ledger.counts`."""
    live = and_(R.state == "claimed", R.claim_expires_at > now)
    stmt = (
        select(R.state, live.label("live"), func.count())
        .where(R.task == task)
        .group_by(R.state, live)
    )
    found = dict.fromkeys(("open", "claimed", "resolved", "skipped"), 0)
    for state, is_live, n in conn.execute(stmt):
        # An expired claim is open again: anyone may take it.
        found["open" if state == "claimed" and not is_live else state] += n
    return Counts(**found)


def claim(conn: Connection, item_id: int, reviewer: str, ttl_s: float, now: datetime) -> bool:
    """`Ledger.claim`."""
    stmt = (
        update(R)
        .where(R.id == item_id, R.state.in_(("open", "claimed")), _takeable(reviewer, now))
        .values(
            state="claimed", claimed_by=reviewer, claim_expires_at=now + timedelta(seconds=ttl_s)
        )
    )
    return conn.execute(stmt).rowcount == 1


def release(conn: Connection, item_id: int, reviewer: str) -> bool:
    """`Ledger.release`."""
    stmt = (
        update(R)
        .where(R.id == item_id, R.state == "claimed", R.claimed_by == reviewer)
        .values(state="open", claimed_by=None, claim_expires_at=None)
    )
    return conn.execute(stmt).rowcount == 1


def close(conn: Connection, item_id: int, reviewer: str, values: dict[str, Any]) -> bool:
    """Resolve or skip: only the claimant (a claim that expired counts while nobody took it)."""
    stmt = (
        update(R)
        .where(R.id == item_id, R.state == "claimed", R.claimed_by == reviewer)
        .values(resolved_by=reviewer, claim_expires_at=None, **values)
    )
    return conn.execute(stmt).rowcount == 1


def item(conn: Connection, item_id: int) -> ItemView | None:
    """`Ledger.item`."""
    found = conn.execute(select(ITEMS).where(R.id == item_id)).first()
    if found is None:
        return None
    ticket = conn.execute(
        select(TICKETS).where(
            TicketRow.source == found.source, TicketRow.ticket_id == found.ticket_id
        )
    ).first()
    same = (
        DecisionRow.task == found.task,
        DecisionRow.source == found.source,
        DecisionRow.ticket_id == found.ticket_id,
    )
    # The decision the item is about; the latest one if that revision was never recorded.
    decision = conn.execute(
        select(DECISIONS)
        .where(*same)
        .order_by(
            (DecisionRow.revision == found.revision).desc(),
            DecisionRow.decided_at.desc(),
            DecisionRow.id.desc(),
        )
        .limit(1)
    ).first()
    labels = conn.execute(
        select(HUMAN_LABELS)
        .where(
            HumanLabelRow.task == found.task,
            HumanLabelRow.source == found.source,
            HumanLabelRow.ticket_id == found.ticket_id,
        )
        .order_by(HumanLabelRow.labelled_at, HumanLabelRow.id)
    )
    return ItemView(
        item=rows.item(found),
        ticket=rows.ticket(ticket) if ticket is not None else None,
        decision=rows.decision(decision) if decision is not None else None,
        human_labels=[rows.human_label(h) for h in labels],
    )


def _takeable(reviewer: str | None, now: datetime) -> ColumnElement[bool]:
    """Open, or claimed by `reviewer`, or claimed by someone whose claim has expired."""
    mine = R.claimed_by == reviewer if reviewer is not None else false()
    return or_(R.state == "open", R.claim_expires_at <= now, mine)
