"""`POST /v1/webhooks/{source}`: a ticket system's webhook, verified, deduplicated, enqueued.

The signature over the raw body is the credential here (`verify`), not the API token. The
order is the trust model's: the source's 404, the capped body, the signature, then the rate
limit of that source and key (so forgeries use up no one's allowance), then the payload. A
payload is a ticket to classify, an event that is not for us, or a person's relabel in the
ticket system (`producer.feedback.HumanLabel`), queued for write-back like any human label.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from producer import namespace, wire
from producer.client import asend_tickets, send_writeback
from producer.errors import InvalidTicket, SignatureInvalid
from producer.feedback import HumanLabel
from producer.http import payloads, verify
from producer.http.body import openapi_body, parse_json, read_capped
from producer.http.credentials import covers
from producer.http.errors import Forbidden
from producer.http.labels import allowed_label
from producer.http.schemas import Accepted
from producer.http.state import Services, ServicesDep
from producer.names import KEY_PREFIX, escape
from producer.schemas import Ticket

log = logging.getLogger(__name__)
router = APIRouter()

#: Where an insecure generic webhook (no key) may create tickets: like a plain API token.
_INSECURE_BINDING = ["*"]


@router.post(
    "/v1/webhooks/{source}",
    status_code=202,
    response_model=None,
    openapi_extra=openapi_body({"type": "object"}),
)
async def webhook(source: str, request: Request, services: ServicesDep) -> Accepted | JSONResponse:
    """A ticket system's webhook: verified, deduplicated, mapped to a `Ticket` and enqueued, or
    to a person's relabel and queued for write-back."""
    hs = services.http
    if source not in hs.webhook_sources:
        raise HTTPException(404, f"unknown webhook source {source!r}")
    body = await read_capped(request, hs.max_body_bytes)
    headers = {k.lower(): v for k, v in request.headers.items()}
    if source in hs.insecure_sources:
        key_name, bound = "insecure", _INSECURE_BINDING
    else:
        verified = verify.VERIFIERS[source](headers, body, hs.secrets(source))
        stamp = verified.stamp
        if stamp is not None and abs(time.time() - stamp) > hs.signature_tolerance_s:
            raise SignatureInvalid("the signed timestamp is outside the tolerance window")
        key_name, bound = f"key-{verified.key + 1}", hs.keys(source)[verified.key].sources
    if not await services.limiter.allow(f"webhook:{source}:{key_name}", hs.webhook_rate_per_s):
        raise HTTPException(429, "rate limited", headers={"Retry-After": "1"})
    delivery = headers.get(verify.DELIVERY_HEADERS[source])
    if delivery is None and source == "generic":
        delivery = headers.get("x-triage-signature")
    gate = (
        wire.Gate(_delivery_key(source, key_name, delivery), hs.delivery_ttl_s)
        if delivery
        else None
    )
    event = _adapt(services, source, parse_json(body), headers)
    if event is None:
        return JSONResponse({"detail": "event ignored"}, 200)
    _may_bring(source, key_name, bound, event)
    if isinstance(event, HumanLabel):
        return await _relabel(services, source, event, gate)
    return await _enqueue(services, source, event, gate)


def _adapt(
    services: Services, source: str, payload: Any, headers: dict[str, str]
) -> Ticket | HumanLabel | None:
    """The source's adapter; a payload of a shape it did not expect is a 422, never a 500."""
    try:
        return payloads.ADAPTERS[source](payload, headers, services.producer)
    except InvalidTicket:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # A signed payload the adapter could not read: the sender's problem to see, ours to log.
        log.warning("%s webhook payload not understood: %s", source, type(exc).__name__)
        raise InvalidTicket(
            f"invalid {source} payload ({type(exc).__name__})",
            [{"field": "payload", "error": f"unexpected shape ({type(exc).__name__})"}],
        ) from exc


def _may_bring(source: str, key_name: str, bound: list[str], event: Ticket | HumanLabel) -> None:
    """A ticket system's webhook brings its own tickets and its people's labels; a generic key
    brings tickets of the sources it is bound to, never with coordinates, never a label."""
    ticket = event.ticket if isinstance(event, HumanLabel) else event
    if source != "generic":
        if ticket.source != source:  # the adapters set it; a slip must not become a write
            raise Forbidden(f"the {source} webhook may not bring {ticket.source!r} tickets")
        return
    if isinstance(event, HumanLabel):
        raise Forbidden(f"the {source} webhook may not set human labels")
    if not covers(bound, ticket.source):
        raise Forbidden(f"{source} webhook {key_name} may not create {ticket.source!r} tickets")
    if ticket.origin is not None:
        raise Forbidden(f"the {source} webhook may not set write-back coordinates (origin)")


async def _enqueue(
    services: Services, source: str, ticket: Ticket, gate: wire.Gate | None
) -> Accepted | JSONResponse:
    # The payload is read before the delivery id is claimed, so the claim and the enqueue
    # are one atomic step in Redis (one round trip): a 422 or a 503 leaves the delivery
    # unclaimed, and the sender's retry is taken rather than dropped as a replay.
    try:
        sent = (
            await asend_tickets(
                [ticket], settings=services.producer, gate=gate, channel=f"webhook:{source}"
            )
        )[0]
    except wire.GateClosed:
        services.metrics.ticket(source, "replayed")
        return JSONResponse({"detail": "delivery already received"}, 200)
    services.metrics.ticket(ticket.source, "enqueued" if sent else "duplicate")
    return Accepted(id=ticket.id, source=ticket.source, duplicate=not sent)


async def _relabel(
    services: Services, source: str, human: HumanLabel, gate: wire.Gate | None
) -> Accepted | JSONResponse:
    """A person's relabel: one write-back message, once per delivery id."""
    form = namespace.tag if source == "zendesk" else str
    label = allowed_label(services.labels, human.ticket.task, human.label, form)
    human = human.model_copy(update={"label": label})
    ticket, result = human.as_writeback()
    try:  # the delivery is claimed in the same atomic step as the push, or not at all
        await asyncio.to_thread(
            send_writeback, ticket, result, settings=services.producer, gate=gate
        )
    except wire.GateClosed:
        services.metrics.ticket(source, "replayed")
        return JSONResponse({"detail": "delivery already received"}, 200)
    services.metrics.ticket(source, "relabelled")
    return Accepted(id=ticket.id, source=ticket.source, duplicate=False)


def _delivery_key(source: str, key_name: str, delivery: str) -> str:
    """Delivery ids are the sender's: per source, and per key for the generic webhook (whose
    keys belong to different senders), with ``%`` and ``:`` escaped like `producer.names`."""
    if len(delivery) > 128:  # a long id (a generic signature) is kept as its digest
        delivery = hashlib.sha256(delivery.encode()).hexdigest()
    parts = [source, key_name, delivery] if source == "generic" else [source, delivery]
    return ":".join([KEY_PREFIX, "delivery", *(escape(p) for p in parts)])
