"""GitHub: the label goes on the issue as ``<prefix><label>`` through the REST API.

The ticket's metadata (from the webhook) holds the repository, the issue number and the labels
the issue had at the classified revision.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import quote

from producer.errors import SinkRejected
from producer.schemas import Ticket, TriageResult
from worker.settings import WorkerSettings
from worker.writeback.targets import http
from worker.writeback.targets.labels import plan_for


def configured(settings: WorkerSettings) -> bool:
    return settings.github_token is not None


def write(ticket: Ticket, result: TriageResult, settings: WorkerSettings) -> str:
    assert result.label is not None and settings.github_token is not None
    repo, number = _issue(ticket)
    base = f"{settings.github_api_url.rstrip('/')}/repos/{repo}/issues/{number}"
    options: dict[str, Any] = {
        "what": "github",
        "timeout_s": settings.source_timeout_s,
        "headers": {
            "Authorization": f"Bearer {settings.github_token.get_secret_value()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        },
    }
    issue = http.call("GET", base, **options).json()
    current = [str(lb.get("name")) for lb in issue.get("labels") or [] if isinstance(lb, dict)]
    todo = plan_for(current, ticket.metadata.get("labels") or [], result, settings)
    if todo.skip:
        return todo.skip
    if todo.add:
        http.call("POST", f"{base}/labels", json={"labels": todo.add}, **options)
    for name in todo.remove:
        with contextlib.suppress(SinkRejected):  # already gone (404): what we wanted
            http.call("DELETE", f"{base}/labels/{quote(name, safe='')}", **options)
    return "labelled"


def _issue(ticket: Ticket) -> tuple[str, int]:
    repo, number = ticket.metadata.get("repo"), ticket.metadata.get("number")
    if not repo or number is None:
        # A ticket enqueued by hand: its id is "<owner>/<repo>#<number>".
        repo, _, num = ticket.id.rpartition("#")
        number = int(num) if num.isdigit() else None
    if not repo or number is None:
        raise SinkRejected(f"github ticket {ticket.id!r} names no repository and issue number")
    return str(repo), int(number)
