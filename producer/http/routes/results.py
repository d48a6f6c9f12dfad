"""A ticket's result (`GET`) and a person's label for it (`POST .../feedback`), behind the API
token. Routes take `{ticket_id:path}`: ids may hold slashes (GitHub's are "<owner>/<repo>#<n>",
sent with the "#" as %23)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException

from producer.client import send_writeback
from producer.http.auth import Caller
from producer.http.schemas import Feedback
from producer.http.state import ServicesDep
from producer.results import get_result
from producer.schemas import StageTrace, Ticket, TriageResult

router = APIRouter()


@router.get("/v1/tickets/{source}/{ticket_id:path}")
async def ticket_result(
    source: str, ticket_id: str, caller: Caller, services: ServicesDep, task: str = "category"
) -> TriageResult:
    """The ticket's latest `TriageResult`; 404 until it is decided."""
    found = await asyncio.to_thread(get_result, ticket_id, source, task, settings=services.producer)
    if found is None:
        raise HTTPException(404, "no result yet")
    return found


@router.post("/v1/tickets/{source}/{ticket_id:path}/feedback", status_code=202)
async def feedback(
    source: str, ticket_id: str, given: Feedback, caller: Caller, services: ServicesDep
) -> TriageResult:
    """Record a human label: it becomes the stored label, enters the index as
    human-confirmed and is appended to the training file."""
    revision = f"human-{uuid.uuid4().hex[:12]}"  # each correction is written back anew
    ticket = Ticket.parse(
        {
            "id": ticket_id,
            "source": source,
            "subject": given.subject,
            "body": given.body,
            "task": given.task,
            "revision": revision,
        }
    )
    result = TriageResult(
        ticket_id=ticket.id,
        source=ticket.source,
        task=ticket.task,
        revision=revision,
        label=given.label,
        confidence=1.0,
        decided_by="human",
        status="labelled",
        reason=given.note or "human feedback",
        trace=[StageTrace(stage="human", label=given.label, confidence=1.0, latency_ms=0.0)],
    )
    await asyncio.to_thread(send_writeback, ticket, result, settings=services.producer)
    services.feedback.append(
        {
            "ticket_id": ticket.id,
            "source": ticket.source,
            "task": ticket.task,
            "text": ticket.text,
            "label": given.label,
            "note": given.note,
            "at": datetime.now(UTC).isoformat(),
        }
    )
    return result
