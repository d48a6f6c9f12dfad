"""Zendesk: the label goes on the ticket as a tag, and into the task's custom field when one is
configured (`TRIAGE_ZENDESK_FIELD_IDS`).

The ticket is the verified `origin` (its id, as the signed trigger named it). Zendesk tags are
lower case without spaces, so our names are folded to that form (`producer.namespace.tag`).
The update is a ``safe_update`` on the ``updated_at`` we read: if anyone changed the ticket in
between, Zendesk answers 409 and the write-back is retried, re-reading the ticket first.
"""

from __future__ import annotations

import base64
from typing import Any

from producer.namespace import tag
from producer.schemas import Ticket, TriageResult, ZendeskTicket
from worker.settings import WorkerSettings
from worker.writeback.targets.http import Api
from worker.writeback.targets.labels import names, plan_for


def configured(settings: WorkerSettings) -> bool:
    return settings.zendesk_url is not None and settings.zendesk_token is not None


def write(ticket: Ticket, result: TriageResult, settings: WorkerSettings) -> str:
    assert result.label is not None and settings.zendesk_url and settings.zendesk_token
    if not isinstance(ticket.origin, ZendeskTicket):
        return "skipped"
    user = f"{settings.zendesk_email or ''}/token:{settings.zendesk_token.get_secret_value()}"
    api = Api(
        settings.zendesk_url,
        "zendesk",
        settings.source_timeout_s,
        {"Authorization": "Basic " + base64.b64encode(user.encode()).decode()},
    )
    path = ("api", "v2", "tickets", f"{ticket.origin.id}.json")
    current = api.json("GET", *path).get("ticket")
    current = current if isinstance(current, dict) else {}
    tags = names(current.get("tags"))
    todo = plan_for(tags, names(ticket.metadata.get("tags")), result, settings, tag)
    if todo.skip:
        return todo.skip
    update: dict[str, Any] = {
        "tags": [t for t in tags if t not in todo.remove] + todo.add,
        "safe_update": True,
        "updated_stamp": current.get("updated_at"),
    }
    field_id = settings.zendesk_field_for(result.task)
    if field_id is not None:  # only this task's field: Zendesk keeps the others as they are
        update["custom_fields"] = [{"id": field_id, "value": result.label}]
    # 409: changed under us; the retry re-reads the ticket and decides again.
    api.call("PUT", *path, json={"ticket": update}, retryable=frozenset({409}))
    return "labelled"
