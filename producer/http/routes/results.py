"""A ticket's result (`GET`) and a person's label for it (`POST .../feedback`), behind the API
token with the `read` and `feedback` scopes for the ticket's source. Routes take
`{ticket_id:path}`: ids may hold slashes (GitHub's are "<owner>/<repo>#<n>", sent with the "#"
as %23).

Feedback checks the credential before it reads a byte of the body, accepts only a ticket the
service knows (404), a configured task and a label of its set (422 naming what is allowed),
and queues one write-back message built from the stored ticket: that push is the one atomic
step; the write-back path records the human label in every target, the feedback ledger included.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from producer.client import send_writeback
from producer.errors import InvalidTicket
from producer.feedback import HumanLabel
from producer.http.auth import Caller
from producer.http.body import openapi_body, parse_json, read_capped
from producer.http.labels import allowed_label
from producer.http.schemas import Feedback
from producer.http.state import ServicesDep
from producer.results import get_result, get_ticket
from producer.schemas import TriageResult

router = APIRouter()


@router.get("/v1/tickets/{source}/{ticket_id:path}")
async def ticket_result(
    source: str, ticket_id: str, caller: Caller, services: ServicesDep, task: str = "category"
) -> TriageResult:
    """The ticket's latest `TriageResult`; 404 until it is decided."""
    caller.require("read", source)
    found = await asyncio.to_thread(get_result, ticket_id, source, task, settings=services.producer)
    if found is None:
        raise HTTPException(404, "no result yet")
    return found


@router.post(
    "/v1/tickets/{source}/{ticket_id:path}/feedback",
    status_code=202,
    openapi_extra=openapi_body(Feedback.model_json_schema()),
)
async def feedback(
    source: str, ticket_id: str, request: Request, caller: Caller, services: ServicesDep
) -> TriageResult:
    """Record a person's label: it becomes the stored label in every sink, with who set it."""
    caller.require("feedback", source)
    given = _feedback(parse_json(await read_capped(request, services.http.max_body_bytes)))
    label = allowed_label(services.labels, given.task, given.label)
    stored = await asyncio.to_thread(
        get_ticket, given.task, source, ticket_id, settings=services.producer
    )
    if stored is None:
        raise HTTPException(404, "no such ticket: feedback is for tickets the service labelled")
    human = HumanLabel(ticket=stored, label=label, by=caller.name, via="api", note=given.note)
    ticket, result = human.as_writeback()
    await asyncio.to_thread(send_writeback, ticket, result, settings=services.producer)
    return result


def _feedback(data: object) -> Feedback:
    try:
        return Feedback.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "error": e["msg"]}
            for e in exc.errors()
        ]
        raise InvalidTicket("invalid feedback", errors) from exc
