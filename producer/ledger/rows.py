"""Database rows to the plain records the ledger hands out (`producer.ledger.records`)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Row

from producer.ledger.records import (
    DecisionRecord,
    HumanLabelRecord,
    Kind,
    ReviewItem,
    State,
    Suggestion,
    TicketRecord,
    Why,
)


def item(row: Row[Any]) -> ReviewItem:
    return ReviewItem(
        id=row.id,
        task=row.task,
        source=row.source,
        ticket_id=row.ticket_id,
        revision=row.revision,
        kind=cast(Kind, row.kind),
        why=cast(Why, row.why),
        state=cast(State, row.state),
        claimed_by=row.claimed_by,
        claim_expires_at=row.claim_expires_at,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        answer_label=row.answer_label,
        note=row.note,
        created_at=row.created_at,
    )


def ticket(row: Row[Any]) -> TicketRecord:
    return TicketRecord(
        source=row.source,
        ticket_id=row.ticket_id,
        subject=row.subject,
        body=row.body,
        origin=row.origin,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
    )


def decision(row: Row[Any]) -> DecisionRecord:
    return DecisionRecord(
        id=row.id,
        task=row.task,
        source=row.source,
        ticket_id=row.ticket_id,
        revision=row.revision,
        label=row.label,
        confidence=row.confidence,
        decided_by=row.decided_by,
        status=row.status,
        reason=row.reason,
        model_version=row.model_version,
        adapter_version=row.adapter_version,
        versions=dict(row.versions),
        neighbours=list(row.neighbours),
        stages=list(row.stages),
        suggestions=[Suggestion(str(s["label"]), float(s["confidence"])) for s in row.suggestions],
        cost_usd=row.cost_usd,
        decided_at=row.decided_at,
    )


def human_label(row: Row[Any]) -> HumanLabelRecord:
    return HumanLabelRecord(
        id=row.id,
        task=row.task,
        source=row.source,
        ticket_id=row.ticket_id,
        revision=row.revision,
        label=row.label,
        labelled_by=row.labelled_by,
        via=row.via,
        note=row.note,
        labelled_at=row.labelled_at,
        model_label=row.model_label,
        model_adapter_version=row.model_adapter_version,
    )
