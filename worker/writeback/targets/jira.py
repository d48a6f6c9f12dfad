"""Jira: the label goes into the issue's ``labels`` field (REST API v2, add/remove operations).

The issue is the ticket's verified `origin` (its key, as the signed webhook named it).
"""

from __future__ import annotations

import base64

from producer.schemas import JiraIssue, Ticket, TriageResult
from worker.settings import WorkerSettings
from worker.writeback.targets.http import Api
from worker.writeback.targets.labels import names, plan_for


def configured(settings: WorkerSettings) -> bool:
    return settings.jira_url is not None and settings.jira_token is not None


def write(ticket: Ticket, result: TriageResult, settings: WorkerSettings) -> str:
    assert result.label is not None and settings.jira_url and settings.jira_token
    if not isinstance(ticket.origin, JiraIssue):
        return "skipped"
    token = settings.jira_token.get_secret_value()
    if settings.jira_email:  # Jira Cloud: basic auth with an API token
        auth = "Basic " + base64.b64encode(f"{settings.jira_email}:{token}".encode()).decode()
    else:  # Jira Data Center: a personal access token
        auth = f"Bearer {token}"
    api = Api(
        settings.jira_url,
        "jira",
        settings.source_timeout_s,
        {"Authorization": auth, "Accept": "application/json"},
    )
    issue = ("rest", "api", "2", "issue", ticket.origin.key)
    fields = api.json("GET", *issue, params={"fields": "labels"}).get("fields")
    current = names(fields.get("labels") if isinstance(fields, dict) else None)
    todo = plan_for(current, names(ticket.metadata.get("labels")), result, settings)
    if todo.skip:
        return todo.skip
    ops = [{"add": name} for name in todo.add] + [{"remove": name} for name in todo.remove]
    api.call("PUT", *issue, json={"update": {"labels": ops}})
    return "labelled"
