"""`POST /v1/tickets`: our own `Ticket` JSON, one or a list, behind the API token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from producer.client import asend_tickets
from producer.errors import InvalidTicket
from producer.http.auth import Caller
from producer.http.body import parse_json, read_capped
from producer.http.schemas import Accepted
from producer.http.state import ServicesDep
from producer.schemas import Ticket

router = APIRouter()


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    # The route reads the raw body itself (to cap it), so OpenAPI is told its shape here.
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post(
    "/v1/tickets",
    status_code=202,
    openapi_extra=_json_body({"anyOf": [Ticket.model_json_schema(), {"type": "array"}]}),
)
async def post_tickets(request: Request, caller: Caller, services: ServicesDep) -> list[Accepted]:
    """Enqueue our own `Ticket` JSON, one or a list; all or nothing (422 names the field)."""
    data = parse_json(await read_capped(request, services.http.max_body_bytes))
    items = data if isinstance(data, list) else [data]
    tickets = []
    for n, item in enumerate(items):
        try:
            tickets.append(Ticket.parse(item))
        except InvalidTicket as exc:
            where = f"[{n}]." if isinstance(data, list) else ""
            errors = [{**e, "field": where + e["field"]} for e in exc.errors]
            raise InvalidTicket(str(exc), errors) from exc
    sent = await asend_tickets(tickets, settings=services.producer)
    for t, ok in zip(tickets, sent, strict=True):
        services.metrics.tickets.labels(t.source, "enqueued" if ok else "duplicate").inc()
    return [
        Accepted(id=t.id, source=t.source, duplicate=not ok)
        for t, ok in zip(tickets, sent, strict=True)
    ]
