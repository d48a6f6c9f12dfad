"""Payload adapters: each source's webhook JSON mapped to our `Ticket` (or None: not for us).

Events we cause ourselves (a label written back) are ignored here, so write-back never loops.
A payload of the wrong shape raises `InvalidTicket` naming the field, like a bad `Ticket`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from producer.errors import InvalidTicket
from producer.schemas import Ticket

Adapter = Callable[[Any, Mapping[str, str]], Ticket | None]

_GITHUB_ACTIONS = {"opened", "edited", "reopened"}
_JIRA_EVENTS = {"jira:issue_created", "jira:issue_updated"}


def github(payload: Any, headers: Mapping[str, str]) -> Ticket | None:
    """An ``issues`` event: opened, edited or reopened. Label events are ours: ignored."""
    if headers.get("x-github-event", "issues") != "issues":
        return None
    if _get(payload, "action", str) not in _GITHUB_ACTIONS:
        return None
    issue = _get(payload, "issue", dict)
    repo = _get(payload, "repository.full_name", str)
    number = _get(issue, "number", int, prefix="issue")
    labels = [_get(lb, "name", str, prefix="issue.labels") for lb in issue.get("labels") or []]
    return Ticket.parse(
        {
            "id": f"{repo}#{number}",
            "source": "github",
            "subject": _get(issue, "title", str, prefix="issue"),
            "body": issue.get("body") or "",
            "revision": issue.get("updated_at"),
            "metadata": {"repo": repo, "number": number, "labels": labels},
        }
    )


def zendesk(payload: Any, headers: Mapping[str, str]) -> Ticket | None:
    """The JSON body of a Zendesk trigger: ``{"ticket": {"id", "subject", "description", ...}}``."""
    ticket = _get(payload, "ticket", dict)
    tags = ticket.get("tags") or []
    if isinstance(tags, str):  # the {{ticket.tags}} placeholder renders space-separated
        tags = tags.split()
    return Ticket.parse(
        {
            "id": str(_get(ticket, "id", (int, str), prefix="ticket")),
            "source": "zendesk",
            "subject": ticket.get("subject") or "",
            "body": ticket.get("description") or "",
            "revision": ticket.get("updated_at"),
            "metadata": {"tags": tags},
        }
    )


def jira(payload: Any, headers: Mapping[str, str]) -> Ticket | None:
    """``jira:issue_created`` / ``jira:issue_updated``; an update of labels alone is ours."""
    if _get(payload, "webhookEvent", str) not in _JIRA_EVENTS:
        return None
    items = (payload.get("changelog") or {}).get("items") or []
    if items and all(isinstance(i, dict) and i.get("field") == "labels" for i in items):
        return None
    issue = _get(payload, "issue", dict)
    fields = _get(issue, "fields", dict, prefix="issue")
    return Ticket.parse(
        {
            "id": _get(issue, "key", str, prefix="issue"),
            "source": "jira",
            "subject": fields.get("summary") or "",
            "body": _text(fields.get("description")),
            "revision": fields.get("updated"),
            "metadata": {"labels": fields.get("labels") or []},
        }
    )


def generic(payload: Any, headers: Mapping[str, str]) -> Ticket | None:
    """Our own `Ticket` JSON; the source defaults to ``generic``."""
    if isinstance(payload, dict):
        payload = {"source": "generic", **payload}
    return Ticket.parse(payload)


ADAPTERS: dict[str, Adapter] = {
    "github": github,
    "zendesk": zendesk,
    "jira": jira,
    "generic": generic,
}


def _get(obj: Any, path: str, kind: type | tuple[type, ...], *, prefix: str = "") -> Any:
    value = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        field = f"{prefix}.{path}" if prefix else path
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidTicket(
            f"invalid payload ({field}: expected {names})",
            [{"field": field, "error": f"expected {names}"}],
        )
    return value


def _text(description: Any) -> str:
    """Jira's description: a string (API v2) or an Atlassian Document Format tree (v3)."""
    if description is None:
        return ""
    if isinstance(description, str):
        return description
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for child in node.get("content") or []:
                walk(child)

    walk(description)
    return " ".join(out)
