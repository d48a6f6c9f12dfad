"""Recording what the write-back path applied: tickets, decisions, people's labels, desk items.

Every write is idempotent on its key, so a redelivered batch changes nothing. Rows are written in
key order: two workers recording overlapping batches lock them in the same order (no deadlock).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.engine import Connection

from producer.ledger import facts
from producer.ledger.engine import insert
from producer.ledger.records import Kind, Why
from producer.ledger.tables import DecisionRow, HumanLabelRow, ReviewItemRow, TicketRow
from producer.schemas import Ticket, TriageResult

WAITING = ("open", "claimed")
#: Ticket ids per `IN (...)` list: well inside every database's limit on bound parameters.
IN_CHUNK = 500


def record(
    conn: Connection,
    decisions: Sequence[tuple[Ticket, TriageResult]],
    *,
    superseded: str | None = None,
) -> None:
    """Record a batch: see `Ledger.record`."""
    pairs = sorted(decisions, key=lambda pair: facts.key_of(pair[1]))
    for ticket, result in pairs:
        if (ticket.source, ticket.id) != (result.source, result.ticket_id):
            raise ValueError(
                f"result for {result.source}/{result.ticket_id} paired with ticket "
                f"{ticket.source}/{ticket.id}"
            )
    if not pairs:
        return
    _upsert_tickets(conn, pairs)
    stmt = insert(conn, DecisionRow).on_conflict_do_nothing(index_elements=list(facts.KEY))
    conn.execute(
        stmt, [{**facts.decision_values(result), "superseded": superseded} for _, result in pairs]
    )
    unsure: list[TriageResult] = []  # in key order, opened together up to a person's label
    for _, result in pairs:
        if result.decided_by == "human" and result.label is not None:
            _open_reviews(conn, unsure)  # before it, as one at a time would: it resolves them
            unsure = []
            # An overtaken person's label is still what they said, then: kept, resolving nothing.
            _human_label(conn, result, resolve=superseded is None)
        elif result.status == "needs_review" and superseded is None:
            unsure.append(result)
    _open_reviews(conn, unsure)


def open_item(conn: Connection, result: TriageResult, kind: Kind, why: Why) -> bool:
    """Put `result` on the desk unless it is there already or a person labelled the ticket
    (their label wins: nothing left to review). True when an item was opened."""
    if _human_labelled(conn, [result]):
        return False
    stmt = _new_items(conn).returning(ReviewItemRow.id)  # a row back only when it was new
    return conn.execute(stmt, _item_values(result, kind, why)).first() is not None


def _open_reviews(conn: Connection, results: Sequence[TriageResult]) -> None:
    """`open_item` of kind review for each of `results`, in one read and one insert."""
    if not results:
        return
    labelled = _human_labelled(conn, results)
    rows = [
        _item_values(r, "review", facts.why_for(r.reason))
        for r in results
        if (r.task, r.source, r.ticket_id) not in labelled
    ]
    if rows:
        conn.execute(_new_items(conn), rows)


def _new_items(conn: Connection) -> Any:
    """An insert of desk items that leaves one already there (a redelivery) as it is."""
    return insert(conn, ReviewItemRow).on_conflict_do_nothing(index_elements=[*facts.KEY, "kind"])


def _item_values(result: TriageResult, kind: Kind, why: Why) -> dict[str, Any]:
    return {
        **facts.key_values(result),
        "kind": kind,
        "why": why,
        "state": "open",
        "created_at": result.decided_at,
    }


def _human_labelled(conn: Connection, results: Sequence[TriageResult]) -> set[tuple[str, str, str]]:
    """Which of these results' tickets a person has labelled: (task, source, ticket_id)."""
    wanted = {(r.task, r.source, r.ticket_id) for r in results}
    found: set[tuple[str, str, str]] = set()
    ids = sorted({ticket_id for _, _, ticket_id in wanted})
    for start in range(0, len(ids), IN_CHUNK):
        rows = conn.execute(
            select(HumanLabelRow.task, HumanLabelRow.source, HumanLabelRow.ticket_id)
            .where(HumanLabelRow.ticket_id.in_(ids[start : start + IN_CHUNK]))
            .where(HumanLabelRow.task.in_(sorted({t for t, _, _ in wanted})))
            .where(HumanLabelRow.source.in_(sorted({s for _, s, _ in wanted})))
        )
        found.update((row.task, row.source, row.ticket_id) for row in rows)
    return found & wanted


def _upsert_tickets(conn: Connection, pairs: Sequence[tuple[Ticket, TriageResult]]) -> None:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for ticket, result in pairs:
        row = facts.ticket_values(ticket, result.decided_at)
        key = (ticket.source, ticket.id)
        earlier = latest.get(key)
        if earlier is None or row["last_seen_at"] >= earlier["last_seen_at"]:
            if earlier is not None:
                row["first_seen_at"] = min(earlier["first_seen_at"], row["first_seen_at"])
            latest[key] = row
    stmt = insert(conn, TicketRow)
    new = stmt.excluded
    newer = new.last_seen_at >= TicketRow.last_seen_at
    # A redelivered or late batch must not put an older subject back, nor drop the origin a
    # verified channel gave: the newest sighting wins, the origin stays unless replaced.
    stmt = stmt.on_conflict_do_update(
        index_elements=["source", "ticket_id"],
        set_={
            "subject": case((newer, new.subject), else_=TicketRow.subject),
            "body": case((newer, new.body), else_=TicketRow.body),
            "origin": case(
                (and_(newer, new.origin.is_not(None)), new.origin),
                else_=func.coalesce(TicketRow.origin, new.origin),
            ),
            "first_seen_at": case(
                (new.first_seen_at < TicketRow.first_seen_at, new.first_seen_at),
                else_=TicketRow.first_seen_at,
            ),
            "last_seen_at": case((newer, new.last_seen_at), else_=TicketRow.last_seen_at),
        },
    )
    conn.execute(stmt, [latest[key] for key in sorted(latest)])


def _human_label(conn: Connection, result: TriageResult, *, resolve: bool) -> None:
    values = facts.human_values(result)
    before = conn.execute(
        select(DecisionRow.label, DecisionRow.adapter_version)
        .where(*_same_ticket(DecisionRow, result))
        .where(DecisionRow.decided_by != "human", DecisionRow.decided_at <= result.decided_at)
        .where(DecisionRow.superseded.is_(None))
        .order_by(DecisionRow.decided_at.desc(), DecisionRow.id.desc())
        .limit(1)
    ).first()
    values["model_label"] = before.label if before else None
    values["model_adapter_version"] = before.adapter_version if before else None
    stmt = (
        insert(conn, HumanLabelRow)
        .on_conflict_do_nothing(index_elements=list(facts.KEY))
        .returning(HumanLabelRow.id)
    )
    if conn.execute(stmt, values).first() is None:
        return  # recorded before: its items were resolved then
    if not resolve:
        return
    conn.execute(
        update(ReviewItemRow)
        .where(*_same_ticket(ReviewItemRow, result), ReviewItemRow.state.in_(WAITING))
        .values(
            state="resolved",
            resolved_by=values["labelled_by"],
            resolved_at=result.decided_at,
            answer_label=result.label,
            note=values["note"],
        )
    )


def _same_ticket(
    row: type[DecisionRow] | type[HumanLabelRow] | type[ReviewItemRow], result: TriageResult
) -> tuple[Any, ...]:
    return (
        row.task == result.task,
        row.source == result.source,
        row.ticket_id == result.ticket_id,
    )
