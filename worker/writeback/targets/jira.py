"""Jira: the label goes into the issue's ``labels`` field (REST API v2, add/remove operations)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from producer.schemas import Ticket, TriageResult
from worker.settings import WorkerSettings
from worker.writeback.targets import http
from worker.writeback.targets.labels import plan_for


def configured(settings: WorkerSettings) -> bool:
    return settings.jira_url is not None and settings.jira_token is not None


def write(ticket: Ticket, result: TriageResult, settings: WorkerSettings) -> str:
    assert result.label is not None and settings.jira_url and settings.jira_token
    url = f"{settings.jira_url.rstrip('/')}/rest/api/2/issue/{quote(ticket.id, safe='')}"
    token = settings.jira_token.get_secret_value()
    if settings.jira_email:  # Jira Cloud: basic auth with an API token
        auth = "Basic " + base64.b64encode(f"{settings.jira_email}:{token}".encode()).decode()
    else:  # Jira Data Center: a personal access token
        auth = f"Bearer {token}"
    options: dict[str, Any] = {
        "what": "jira",
        "timeout_s": settings.source_timeout_s,
        "headers": {"Authorization": auth, "Accept": "application/json"},
    }
    issue = http.call("GET", url, params={"fields": "labels"}, **options).json()
    todo = plan_for(
        (issue.get("fields") or {}).get("labels") or [],
        ticket.metadata.get("labels") or [],
        result,
        settings,
    )
    if todo.skip:
        return todo.skip
    ops = [{"add": name} for name in todo.add] + [{"remove": name} for name in todo.remove]
    http.call("PUT", url, json={"update": {"labels": ops}}, **options)
    return "labelled"
