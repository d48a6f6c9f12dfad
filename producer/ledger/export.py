"""The training set from the ledger: the model's labels plus people's corrections (the latest
person's label per ticket wins), with a held-out split fixed by each ticket's identity."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from sqlalchemy import ColumnElement, Subquery, and_, case, func, or_, select
from sqlalchemy.engine import Connection

from producer.ledger.records import ExportRow, Split
from producer.ledger.tables import DecisionRow, HumanLabelRow, TicketRow

#: Rows fetched from the database at a time: an export of millions does not sit in memory.
CHUNK = 1_000


def split_of(source: str, ticket_id: str, holdout: float) -> Split:
    """``holdout`` for a `holdout` share of tickets, chosen by a hash of (source, id): the same
    ticket lands on the same side in every export, whatever else changed."""
    digest = hashlib.sha256(f"{source}\x00{ticket_id}".encode()).digest()
    return "holdout" if int.from_bytes(digest[:8], "big") / 2**64 < holdout else "train"


def export(
    conn: Connection, task: str, *, holdout: float, humans_only: bool
) -> Iterator[ExportRow]:
    """`Ledger.export`: rows ordered by (source, ticket id)."""
    H, D = HumanLabelRow, DecisionRow
    newest_human = func.row_number().over(
        partition_by=(H.source, H.ticket_id), order_by=(H.labelled_at.desc(), H.id.desc())
    )
    human = (
        select(H.source, H.ticket_id, H.label, newest_human.label("rank"))
        .where(H.task == task)
        .subquery()
    )
    # The latest model decision only: an older revision's label says nothing of the ticket's
    # current text, so a ticket whose newest decision went to review has no model label.
    newest_model = func.row_number().over(
        partition_by=(D.source, D.ticket_id), order_by=(D.decided_at.desc(), D.id.desc())
    )
    model = (
        select(D.source, D.ticket_id, D.label, D.status, newest_model.label("rank"))
        .where(D.task == task, D.decided_by != "human", D.superseded.is_(None))
        .subquery()
    )
    model_label = case((model.c.status == "labelled", model.c.label))
    wanted: ColumnElement[bool] = human.c.label.is_not(None)
    if not humans_only:
        wanted = or_(wanted, model_label.is_not(None))
    stmt = (
        select(
            TicketRow.source,
            TicketRow.ticket_id,
            TicketRow.subject,
            TicketRow.body,
            human.c.label.label("human_label"),
            model_label.label("model_label"),
        )
        .outerjoin(human, _newest_of(human))
        .outerjoin(model, _newest_of(model))
        .where(wanted)
        .order_by(TicketRow.source, TicketRow.ticket_id)
    )
    for row in conn.execution_options(yield_per=CHUNK).execute(stmt):
        by_human = row.human_label is not None
        yield ExportRow(
            ticket_id=row.ticket_id,
            source=row.source,
            text=f"{row.subject}\n{row.body}".strip(),
            label=row.human_label if by_human else row.model_label,
            split=split_of(row.source, row.ticket_id, holdout),
            set_by="human" if by_human else "model",
        )


def _newest_of(ranked: Subquery) -> ColumnElement[bool]:
    return and_(
        ranked.c.source == TicketRow.source,
        ranked.c.ticket_id == TicketRow.ticket_id,
        ranked.c.rank == 1,
    )
