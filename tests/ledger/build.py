"""Tickets and results for the ledger's tests, at times the test chooses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from producer.feedback import HumanLabel
from producer.schemas import DecidedBy, Neighbour, StageTrace, Status, Ticket, TriageResult

#: The tests' clock: every time is T0 plus some minutes.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ticket(ticket_id: str, *, source: str = "api", task: str = "category", **kw: Any) -> Ticket:
    fields: dict[str, Any] = {"subject": f"subject {ticket_id}", "body": f"body {ticket_id}"}
    return Ticket(id=ticket_id, source=source, task=task, **{**fields, **kw})


def decided(
    t: Ticket,
    label: str | None,
    *,
    minutes: float = 0,
    status: Status = "labelled",
    by: DecidedBy = "classifier",
    confidence: float = 0.95,
    reason: str | None = None,
    adapter: str | None = "v1",
    revision: str | None = None,
) -> TriageResult:
    """A model's result for `t`, decided at T0 + `minutes`."""
    return TriageResult(
        ticket_id=t.id,
        source=t.source,
        task=t.task,
        revision=revision or t.effective_revision,
        label=label,
        confidence=confidence,
        decided_by=by,
        status=status,
        reason=reason,
        evidence=[Neighbour(ticket_id="n1", source="api", label=label or "x", score=0.9)],
        trace=[
            StageTrace(stage="classifier", label=label, confidence=confidence, latency_ms=1.0),
            StageTrace(stage="cascade", label=label, confidence=confidence, latency_ms=0.0),
        ],
        versions={"adapter": adapter} if adapter else {},
        decided_at=at(minutes),
    )


def unsure(t: Ticket, label: str, *, minutes: float = 0, reason: str | None = None) -> TriageResult:
    return decided(t, label, minutes=minutes, status="needs_review", confidence=0.4, reason=reason)


def human(
    t: Ticket,
    label: str,
    *,
    minutes: float = 0,
    by: str = "ann",
    via: str = "api",
    note: str | None = None,
) -> tuple[Ticket, TriageResult]:
    """A person's label for `t`, as every channel sends it down the write-back path."""
    return HumanLabel(
        ticket=t, label=label, by=by, via=via, note=note, at=at(minutes)
    ).as_writeback()
