"""`POST /v1/webhooks/{source}`: a ticket system's webhook, verified, deduplicated, enqueued.

The signature over the raw body is the credential here (`verify`), not the API token. The
source's 404 and rate limit come first, before any of the body is read.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from producer import wire
from producer.client import asend_tickets
from producer.errors import SignatureInvalid
from producer.http import payloads, verify
from producer.http.body import parse_json, read_capped
from producer.http.schemas import Accepted
from producer.http.state import Services, ServicesDep
from producer.names import KEY_PREFIX

router = APIRouter()


async def served_source(source: str, services: ServicesDep) -> str:
    """The path's source if it is served (else 404) and within its rate (else 429)."""
    hs = services.http
    if source not in hs.webhook_sources:
        raise HTTPException(404, f"unknown webhook source {source!r}")
    if not await services.limiter.allow(source, hs.webhook_rate_per_s):
        raise HTTPException(429, "rate limited", headers={"Retry-After": "1"})
    return source


@router.post("/v1/webhooks/{source}", status_code=202, response_model=None)
async def webhook(
    source: Annotated[str, Depends(served_source)], request: Request, services: ServicesDep
) -> Accepted | JSONResponse:
    """A ticket system's webhook: verified, deduplicated, mapped to a `Ticket`, enqueued."""
    hs = services.http
    body = await read_capped(request, hs.max_body_bytes)
    headers = {k.lower(): v for k, v in request.headers.items()}
    if source not in hs.insecure_sources:
        stamp = verify.VERIFIERS[source](headers, body, hs.secrets(source))
        if stamp is not None and abs(time.time() - stamp) > hs.signature_tolerance_s:
            raise SignatureInvalid("the signed timestamp is outside the tolerance window")
    delivery = headers.get(verify.DELIVERY_HEADERS[source])
    if delivery is None and source == "generic":
        delivery = headers.get("x-triage-signature")
    return await _accept(services, source, delivery, headers, body)


async def _accept(
    services: Services, source: str, delivery: str | None, headers: dict[str, str], body: bytes
) -> Accepted | JSONResponse:
    # The payload is read before the delivery id is claimed, so the claim and the enqueue
    # are one atomic step in Redis (one round trip): a 422 or a 503 leaves the delivery
    # unclaimed, and the sender's retry is taken rather than dropped as a replay.
    ticket = payloads.ADAPTERS[source](parse_json(body), headers)
    if ticket is None:
        return JSONResponse({"detail": "event ignored"}, 200)
    gate = (
        wire.Gate(f"{KEY_PREFIX}:delivery:{source}:{delivery}", services.http.delivery_ttl_s)
        if delivery
        else None
    )
    try:
        sent = (await asend_tickets([ticket], settings=services.producer, gate=gate))[0]
    except wire.GateClosed:
        services.metrics.tickets.labels(source, "replayed").inc()
        return JSONResponse({"detail": "delivery already received"}, 200)
    services.metrics.tickets.labels(source, "enqueued" if sent else "duplicate").inc()
    return Accepted(id=ticket.id, source=ticket.source, duplicate=not sent)
