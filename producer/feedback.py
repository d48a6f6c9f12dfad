"""A person's label for a ticket, whichever channel brought it (the API, the review desk, a
relabel seen in GitHub, Jira or Zendesk), as the `TriageResult` the write-back path applies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from producer.schemas import StageTrace, Ticket, TriageResult


class HumanLabel(BaseModel):
    """`label` for `ticket` (the ticket as the service stored it, or as its signed webhook
    named it: never coordinates a request made up), set by `by` through `via`."""

    model_config = ConfigDict(extra="forbid")

    ticket: Ticket
    label: str = Field(min_length=1, max_length=256)
    by: str = Field(min_length=1, max_length=256)
    via: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=2_000)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def as_writeback(self) -> tuple[Ticket, TriageResult]:
        """The ticket (a revision of its own: each human label is written back anew) and the
        human result to send to `triage.writeback`."""
        revision = f"human-{uuid.uuid4().hex[:12]}"
        ticket = self.ticket.model_copy(update={"revision": revision})
        result = TriageResult(
            ticket_id=ticket.id,
            source=ticket.source,
            task=ticket.task,
            revision=revision,
            label=self.label,
            confidence=1.0,
            decided_by="human",
            status="labelled",
            reason=self.note or f"labelled by a person ({self.via})",
            trace=[StageTrace(stage="human", label=self.label, confidence=1.0, latency_ms=0.0)],
            decided_at=self.at,
            labelled_by=self.by,
            via=self.via,
        )
        return ticket, result
