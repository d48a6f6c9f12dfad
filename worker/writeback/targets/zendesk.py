"""Zendesk: the label goes on the ticket as a tag (and into a custom field, when configured).

Zendesk tags are lower-case without spaces, so our prefix and the label are folded to that form.
The update is a ``safe_update`` on the ``updated_at`` we read: if anyone changed the ticket in
between, Zendesk answers 409 and the write-back is retried, re-reading the ticket first.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from producer.schemas import Ticket, TriageResult
from worker.settings import WorkerSettings
from worker.writeback.targets import http
from worker.writeback.targets.labels import plan_for


def configured(settings: WorkerSettings) -> bool:
    return settings.zendesk_url is not None and settings.zendesk_token is not None


def tag(text: str) -> str:
    """Zendesk's tag form of a label: lower case, runs of other characters as one ``_``."""
    return re.sub(r"[^a-z0-9_:-]+", "_", text.lower())


def write(ticket: Ticket, result: TriageResult, settings: WorkerSettings) -> str:
    assert result.label is not None and settings.zendesk_url and settings.zendesk_token
    url = f"{settings.zendesk_url.rstrip('/')}/api/v2/tickets/{ticket.id}.json"
    user = f"{settings.zendesk_email or ''}/token:{settings.zendesk_token.get_secret_value()}"
    options: dict[str, Any] = {
        "what": "zendesk",
        "timeout_s": settings.source_timeout_s,
        "headers": {"Authorization": "Basic " + base64.b64encode(user.encode()).decode()},
    }
    current = http.call("GET", url, **options).json().get("ticket") or {}
    tags = [str(t) for t in current.get("tags") or []]
    seen = ticket.metadata.get("tags") or []
    todo = plan_for(tags, seen, result, settings, tag)
    if todo.skip:
        return todo.skip
    want = [t for t in tags if t not in todo.remove] + todo.add
    update: dict[str, Any] = {
        "tags": want,
        "safe_update": True,
        "updated_stamp": current.get("updated_at"),
    }
    if settings.zendesk_field_id is not None:
        update["custom_fields"] = [{"id": settings.zendesk_field_id, "value": result.label}]
    # 409: changed under us; the retry re-reads the ticket and decides again.
    http.call("PUT", url, json={"ticket": update}, retryable=frozenset({409}), **options)
    return "labelled"
