"""The generic signed callback: one POST of the `TriageResult` to the ticket's `callback` URL.

Signed like Stripe webhooks (``X-Triage-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``)
and keyed for the receiver's dedupe (``Idempotency-Key: <task>:<source>:<id>:<revision>``).
Sent through `safe_connect` (checked addresses only, no redirects). Only the answer's status is
kept: its body is never read, and errors name the URL without credentials or query (`redact`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlsplit

from producer.backoff import parse_retry_after
from producer.callbacks import CallbackRefused, redact, target
from producer.errors import SinkRejected, SinkUnavailable
from producer.schemas import Ticket, TriageResult
from worker.settings import get_settings
from worker.writeback.targets.safe_connect import TRANSPORT_ERRORS, callback_pool


def post_callback(ticket: Ticket, result: TriageResult) -> str:
    """POST the result to the ticket's callback; return what happened (for the sink record)."""
    if not has_callback(ticket):
        return "none"
    settings = get_settings()
    if settings.callback_secret is None:
        raise SinkRejected("ticket has a callback but TRIAGE_CALLBACK_SECRET is not set")
    url, shown = str(ticket.callback), redact(str(ticket.callback))
    body = result.model_dump_json().encode()
    timeout_s = settings.callback_timeout_s
    try:
        target(url)  # http(s) without credentials, as at intake
        headers: dict[bytes | str, bytes | str] = {
            "Host": urlsplit(url).netloc,
            "Content-Type": "application/json",
            "X-Triage-Signature": sign(
                settings.callback_secret.get_secret_value(), int(time.time()), body
            ),
            "Idempotency-Key": (
                f"{ticket.task}:{ticket.source}:{ticket.id}:{ticket.effective_revision}"
            ),
        }
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), timeout_s)
        with callback_pool().stream(
            "POST", url, headers=headers, content=body, extensions={"timeout": timeouts}
        ) as response:  # closed unread: the receiver's body stays there
            status = response.status
            retry_after = b"".join(v for k, v in response.headers if k.lower() == b"retry-after")
    except CallbackRefused as exc:  # an address not allowed: no retry will change that
        raise SinkRejected(f"callback: {exc}") from exc
    except TRANSPORT_ERRORS as exc:
        error = f"{type(exc).__name__}: {exc}".replace(url, shown)
        raise SinkUnavailable(f"callback: POST {shown} failed: {error}") from exc
    if status == 429 or status >= 500:
        raise SinkUnavailable(
            f"callback: POST {shown} answered {status}",
            retry_after_s=parse_retry_after(retry_after.decode("latin-1")),
        )
    if status >= 400:
        raise SinkRejected(f"callback: POST {shown} refused with {status}")
    return f"http {status}"


def has_callback(ticket: Ticket) -> bool:
    """Whether `post_callback` would post anything for `ticket`."""
    return ticket.callback is not None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Signature header value: HMAC-SHA256 over ``<timestamp>.<body>`` (Stripe-style)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"
