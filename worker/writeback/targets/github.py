"""GitHub: the label goes on the issue as ``<prefix><task>:<label>`` through the REST API.

The issue is the ticket's verified `origin` (its signed webhook named it), never its metadata;
`metadata.labels` holds the labels the issue had at the classified revision.
"""

from __future__ import annotations

import contextlib

from producer.errors import SinkRejected
from producer.schemas import GitHubIssue, Ticket, TriageResult
from worker.settings import WorkerSettings
from worker.writeback.targets.http import Api
from worker.writeback.targets.labels import names, plan_for


def configured(settings: WorkerSettings) -> bool:
    return settings.github_token is not None


def write(ticket: Ticket, result: TriageResult, settings: WorkerSettings) -> str:
    assert result.label is not None and settings.github_token is not None
    if not isinstance(ticket.origin, GitHubIssue):
        return "skipped"
    owner, _, repo = ticket.origin.repo.partition("/")
    issue = ("repos", owner, repo, "issues", str(ticket.origin.number))
    api = Api(
        settings.github_api_url,
        "github",
        settings.source_timeout_s,
        {
            "Authorization": f"Bearer {settings.github_token.get_secret_value()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        },
    )
    current = [
        lb["name"]
        for lb in api.json("GET", *issue).get("labels") or []
        if isinstance(lb, dict) and isinstance(lb.get("name"), str)
    ]
    todo = plan_for(current, names(ticket.metadata.get("labels")), result, settings)
    if todo.skip:
        return todo.skip
    if todo.add:
        api.call("POST", *issue, "labels", json={"labels": todo.add})
    for name in todo.remove:
        with contextlib.suppress(SinkRejected):  # already gone (404): what we wanted
            api.call("DELETE", *issue, "labels", name)
    return "labelled"
