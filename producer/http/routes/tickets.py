"""`POST /v1/tickets`: our own `Ticket` JSON, one or a list, behind the API token.

The caller needs the `enqueue` scope for each ticket's source (the ticket systems' sources only
when granted by name), and may set a ticket's `origin` (its write-back coordinates) only for a
ticket system its scope names. All or nothing: one refused ticket sends none.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from producer.client import asend_tickets
from producer.errors import InvalidTicket
from producer.http.auth import Caller
from producer.http.body import openapi_body, parse_json, read_capped
from producer.http.credentials import Credential
from producer.http.errors import Forbidden
from producer.http.schemas import Accepted
from producer.http.state import ServicesDep
from producer.schemas import Ticket

router = APIRouter()


@router.post(
    "/v1/tickets",
    status_code=202,
    openapi_extra=openapi_body({"anyOf": [Ticket.model_json_schema(), {"type": "array"}]}),
)
async def post_tickets(request: Request, caller: Caller, services: ServicesDep) -> list[Accepted]:
    """Enqueue our own `Ticket` JSON, one or a list; all or nothing (422 names the field, 403
    the source or origin the token may not set)."""
    data = parse_json(await read_capped(request, services.http.max_body_bytes))
    items = data if isinstance(data, list) else [data]
    tickets = []
    for n, item in enumerate(items):
        where = f"[{n}]." if isinstance(data, list) else ""
        try:
            ticket = Ticket.parse(item)
        except InvalidTicket as exc:
            errors = [{**e, "field": where + e["field"]} for e in exc.errors]
            raise InvalidTicket(str(exc), errors) from exc
        _may_send(caller, ticket, where)
        tickets.append(ticket)
    sent = await asend_tickets(tickets, settings=services.producer, channel="api")
    for t, ok in zip(tickets, sent, strict=True):
        services.metrics.ticket(t.source, "enqueued" if ok else "duplicate")
    return [
        Accepted(id=t.id, source=t.source, duplicate=not ok)
        for t, ok in zip(tickets, sent, strict=True)
    ]


def _may_send(caller: Credential, ticket: Ticket, where: str) -> None:
    """403 unless `caller` may enqueue `ticket` as it is, its write-back coordinates included."""
    caller.require("enqueue", ticket.source)
    origin = ticket.origin
    if origin is None:
        return
    if not caller.names("enqueue", origin.system):
        raise Forbidden(
            f"credential {caller.name!r} may not set write-back coordinates (origin) for "
            f"{origin.system}: its enqueue scope must name {origin.system!r}"
        )
    if origin.system != ticket.source:
        raise InvalidTicket(
            f"invalid ticket ({where}origin: a {origin.system} origin on a {ticket.source} ticket)",
            [{"field": f"{where}origin", "error": f"names {origin.system}, not {ticket.source}"}],
        )
