"""The generic signed callback: one POST of the `TriageResult` to the ticket's `callback` URL.

Signed like Stripe webhooks (``X-Triage-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``)
and keyed for the receiver's dedupe (``Idempotency-Key: <task>:<source>:<id>:<revision>``).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from producer.errors import SinkRejected
from producer.schemas import Ticket, TriageResult
from worker.settings import get_settings
from worker.writeback.targets import http


def post_callback(ticket: Ticket, result: TriageResult) -> str:
    """POST the result to the ticket's callback; return what happened (for the sink record)."""
    if ticket.callback is None:
        return "none"
    settings = get_settings()
    if settings.callback_secret is None:
        raise SinkRejected("ticket has a callback but TRIAGE_CALLBACK_SECRET is not set")
    body = result.model_dump_json().encode()
    headers = {
        "Content-Type": "application/json",
        "X-Triage-Signature": sign(
            settings.callback_secret.get_secret_value(), int(time.time()), body
        ),
        "Idempotency-Key": f"{ticket.task}:{ticket.source}:{ticket.id}:{ticket.effective_revision}",
    }
    response = http.call(
        "POST",
        str(ticket.callback),
        what="callback",
        timeout_s=settings.callback_timeout_s,
        content=body,
        headers=headers,
    )
    return f"http {response.status_code}"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Signature header value: HMAC-SHA256 over ``<timestamp>.<body>`` (Stripe-style)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"
