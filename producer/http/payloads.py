"""Payload adapters: each source's signed webhook JSON mapped to what it means for us.

- a `Ticket` to classify. Its `origin`, where a label may be written back, comes from the signed
  payload alone (GitHub ``repository.full_name`` + ``issue.number``, Zendesk ``ticket.id``, Jira
  ``issue.key``) and is validated by that system's grammar; `metadata` keeps what we saw (the
  labels at this revision), never coordinates.
- a `HumanLabel`: a person, not the bot, set one of our labels (``triage:<task>:<label>``,
  `producer.namespace`) in the system. Its `label` is the text after ``<task>:`` as the system
  holds it (Zendesk: tag form); the route checks it against the task's label set.
- None: not for us. Label changes the bot made (no write-back loop), labels outside our
  namespace, other events, and every label change while the system's bot setting is unset.

A payload of the wrong shape at any depth raises `InvalidTicket` naming the field (the route
answers 422); no other exception leaves an adapter.

Zendesk has no relabel event of its own: a trigger (ticket updated, the task's tags changed)
sends this JSON body, and the adapter takes the one ``triage:<task>:*`` tag it names::

    {"event": "tags_changed", "task": "category", "updater": {"id": {{current_user.id}}},
     "ticket": {"id": {{ticket.id}}, "subject": "{{ticket.title}}",
                "description": "{{ticket.description}}", "tags": "{{ticket.tags}}",
                "updated_at": "{{ticket.updated_at_with_timestamp}}"}}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from producer import namespace
from producer.errors import InvalidTicket
from producer.feedback import HumanLabel
from producer.schemas import GitHubIssue, JiraIssue, Ticket, ZendeskTicket
from producer.settings import ProducerSettings, get_settings

log = logging.getLogger(__name__)

Event = Ticket | HumanLabel | None
M = TypeVar("M", bound=BaseModel)


class Adapter(Protocol):
    def __call__(
        self, payload: Any, headers: Mapping[str, str], settings: ProducerSettings | None = None
    ) -> Event: ...


_GITHUB_TICKET = {"opened", "edited", "reopened"}
_GITHUB_LABEL = {"labeled", "unlabeled"}
_JIRA_EVENTS = {"jira:issue_created", "jira:issue_updated"}
_ZENDESK_ID = re.compile(r"^[0-9]{1,16}$")
#: Jira's description in Atlassian Document Format: most nodes read before the rest is dropped.
_MAX_NODES = 10_000


def github(
    payload: Any, headers: Mapping[str, str], settings: ProducerSettings | None = None
) -> Event:
    """An ``issues`` event: opened, edited or reopened is a ticket; labeled or unlabeled by a
    person (not `TRIAGE_GITHUB_BOT_LOGIN`) with one of our labels is a human label."""
    if headers.get("x-github-event", "issues") != "issues":
        return None
    action = _get(payload, "action", str)
    if action in _GITHUB_TICKET:
        return _github_ticket(payload)
    if action not in _GITHUB_LABEL:
        return None
    settings = settings or get_settings()
    person = _opt(payload, "sender.login", str)
    bot = settings.github_bot_login
    if bot is None or person is None or person.casefold() == bot.casefold():
        return None
    prefix = settings.source_label_prefix
    changed = namespace.parse(_get(payload, "label.name", str), prefix)
    if changed is None:
        return None
    task, label = changed
    ticket = _github_ticket(payload, task)
    if action == "unlabeled":  # what the person left in that task's namespace, if one label
        left = [lb for t, lb in _parsed(ticket.metadata["labels"], prefix) if t == task]
        if len(left) != 1:
            return None
        label = left[0]
    return _human(ticket, label, person, "github")


def zendesk(
    payload: Any, headers: Mapping[str, str], settings: ProducerSettings | None = None
) -> Event:
    """A Zendesk trigger's JSON body: ``{"ticket": {"id", "subject", "description", "tags",
    "updated_at"}}`` is a ticket; with ``"event": "tags_changed"`` (module docstring) and an
    updater who is not `TRIAGE_ZENDESK_BOT_USER_ID`, the task's one tag of ours is a human label."""
    event = _opt(payload, "event", str)
    if event is None:
        return _zendesk_ticket(payload)
    if event != "tags_changed":
        return None
    settings = settings or get_settings()
    updater = _get(payload, "updater.id", (int, str))
    if isinstance(updater, int) and not 0 < updater < 2**63:
        raise _invalid("updater.id", "expected a Zendesk user id")
    bot = settings.zendesk_bot_user_id
    if bot is None or str(updater) == bot:
        return None
    task = _get(payload, "task", str)
    ticket = _zendesk_ticket(payload, task)
    prefix = settings.source_label_prefix
    ours = [
        lb
        for t, lb in _parsed(ticket.metadata["tags"], prefix, namespace.tag)
        if t == namespace.tag(task)
    ]
    if len(ours) != 1:  # none, or several: which one the person meant is not ours to guess
        return None
    return _human(ticket, ours[0], str(updater), "zendesk")


def jira(
    payload: Any, headers: Mapping[str, str], settings: ProducerSettings | None = None
) -> Event:
    """``jira:issue_created`` / ``jira:issue_updated``. A change of labels alone is not a new
    revision: ours is ignored; a person's (not `TRIAGE_JIRA_BOT_ACCOUNT_ID`) that changes one
    of our labels is a human label."""
    if _get(payload, "webhookEvent", str) not in _JIRA_EVENTS:
        return None
    changes = _opt(payload, "changelog.items", list) or []
    for n, item in enumerate(changes):
        if not isinstance(item, dict):
            raise _invalid(f"changelog.items[{n}]", "expected dict")
    labels = [item for item in changes if item.get("field") == "labels"]
    if labels:
        human = _jira_relabel(payload, labels, settings or get_settings())
        if human is not None or len(labels) == len(changes):
            return human
    return _jira_ticket(payload)


def generic(
    payload: Any, headers: Mapping[str, str], settings: ProducerSettings | None = None
) -> Event:
    """Our own `Ticket` JSON; the source defaults to ``generic``. Never write-back coordinates:
    which sources a key may create is the route's check."""
    if not isinstance(payload, dict):
        raise _invalid("ticket", "expected a JSON object")
    if payload.get("origin") is not None:
        raise _invalid("origin", "the generic webhook cannot set write-back coordinates")
    return Ticket.parse({"source": "generic", **payload})


ADAPTERS: dict[str, Adapter] = {
    "github": github,
    "zendesk": zendesk,
    "jira": jira,
    "generic": generic,
}


def _github_ticket(payload: Any, task: str | None = None) -> Ticket:
    issue = _get(payload, "issue", dict)
    repo = _get(payload, "repository.full_name", str)
    number = _get(issue, "number", int, prefix="issue")
    origin = _origin(
        GitHubIssue, {"repo": "repository.full_name", "number": "issue.number"}, repo, number
    )
    labels = [
        _get(lb, "name", str, prefix=f"issue.labels[{n}]")
        for n, lb in enumerate(_opt(issue, "labels", list, prefix="issue") or [])
    ]
    return _ticket(
        id=f"{origin.repo}#{origin.number}",
        source="github",
        subject=_get(issue, "title", str, prefix="issue"),
        body=_opt(issue, "body", str, prefix="issue") or "",
        revision=_opt(issue, "updated_at", str, prefix="issue"),
        metadata={"labels": labels},
        origin=origin,
        task=task,
    )


def _zendesk_ticket(payload: Any, task: str | None = None) -> Ticket:
    ticket = _get(payload, "ticket", dict)
    raw_id = _get(ticket, "id", (int, str), prefix="ticket")
    if isinstance(raw_id, str):
        if not _ZENDESK_ID.fullmatch(raw_id):
            raise _invalid("ticket.id", "expected a Zendesk ticket id (digits)")
        raw_id = int(raw_id)
    origin = _origin(ZendeskTicket, {"id": "ticket.id"}, raw_id)
    tags = _opt(ticket, "tags", (list, str), prefix="ticket") or []
    if isinstance(tags, str):  # the {{ticket.tags}} placeholder renders space-separated
        tags = tags.split()
    for n, value in enumerate(tags):
        if not isinstance(value, str):
            raise _invalid(f"ticket.tags[{n}]", "expected str")
    return _ticket(
        id=str(origin.id),
        source="zendesk",
        subject=_opt(ticket, "subject", str, prefix="ticket") or "",
        body=_opt(ticket, "description", str, prefix="ticket") or "",
        revision=_opt(ticket, "updated_at", str, prefix="ticket"),
        metadata={"tags": tags},
        origin=origin,
        task=task,
    )


def _jira_ticket(payload: Any, task: str | None = None) -> Ticket:
    issue = _get(payload, "issue", dict)
    origin = _origin(JiraIssue, {"key": "issue.key"}, _get(issue, "key", str, prefix="issue"))
    fields = _get(issue, "fields", dict, prefix="issue")
    labels = _opt(fields, "labels", list, prefix="issue.fields") or []
    for n, value in enumerate(labels):
        if not isinstance(value, str):
            raise _invalid(f"issue.fields.labels[{n}]", "expected str")
    return _ticket(
        id=origin.key,
        source="jira",
        subject=_opt(fields, "summary", str, prefix="issue.fields") or "",
        body=_text(fields.get("description")),
        revision=_opt(fields, "updated", str, prefix="issue.fields"),
        metadata={"labels": labels},
        origin=origin,
        task=task,
    )


def _jira_relabel(
    payload: Any, items: list[dict[str, Any]], settings: ProducerSettings
) -> HumanLabel | None:
    """The label a person set in one task's namespace: the one of ours they added, or, when
    they only removed, the one left. Several tasks in one edit: the first, by task name."""
    person = (
        _opt(payload, "user.accountId", str)  # Jira Cloud
        or _opt(payload, "user.key", str)  # Jira Data Center
        or _opt(payload, "user.name", str)
    )
    bot = settings.jira_bot_account_id
    if bot is None or person is None or person == bot:
        return None
    prefix = settings.source_label_prefix
    chosen: dict[str, str] = {}
    for n, item in enumerate(items):
        before = (_opt(item, "fromString", str, prefix=f"changelog.items[{n}]") or "").split()
        after = (_opt(item, "toString", str, prefix=f"changelog.items[{n}]") or "").split()
        added = _parsed([lb for lb in after if lb not in before], prefix)
        removed = _parsed([lb for lb in before if lb not in after], prefix)
        for task in sorted({t for t, _ in added + removed}):
            new = [lb for t, lb in added if t == task]
            left = [lb for t, lb in _parsed(after, prefix) if t == task]
            pick = new if new else left
            if len(pick) == 1:
                chosen.setdefault(task, pick[0])
    if not chosen:
        return None
    task = min(chosen)
    if len(chosen) > 1:
        log.warning(
            "jira: one edit by %s changed %d tasks' labels; only %s is taken as a human label",
            person,
            len(chosen),
            task,
        )
    return _human(_jira_ticket(payload, task), chosen[task], person, "jira")


def _parsed(names: list[str], prefix: str, form: namespace.Form = str) -> list[tuple[str, str]]:
    return [p for name in names if (p := namespace.parse(name, prefix, form)) is not None]


def _ticket(*, task: str | None, **fields: Any) -> Ticket:
    return Ticket.parse(fields if task is None else {**fields, "task": task})


def _human(ticket: Ticket, label: str, by: str, via: str) -> HumanLabel:
    try:
        return HumanLabel(ticket=ticket, label=label, by=by, via=via)
    except ValidationError as exc:
        raise InvalidTicket(
            "invalid relabel",
            [{"field": str(e["loc"][0]), "error": e["msg"]} for e in exc.errors()],
        ) from exc


def _origin(kind: type[M], where: Mapping[str, str], *values: Any) -> M:
    """`kind` from the payload's `values` (one per field, in `where`'s order), or InvalidTicket
    naming the payload's field."""
    try:
        return kind.model_validate(dict(zip(where, values, strict=True)))
    except ValidationError as exc:
        errors = [
            {"field": where.get(str(e["loc"][0]) if e["loc"] else "", "payload"), "error": e["msg"]}
            for e in exc.errors()
        ]
        fields = ", ".join(f"{e['field']}: {e['error']}" for e in errors)
        raise InvalidTicket(f"invalid payload ({fields})", errors) from exc


def _get(obj: Any, path: str, kind: type | tuple[type, ...], *, prefix: str = "") -> Any:
    """The value at `path` (dotted keys), of type `kind`, or InvalidTicket naming the field."""
    value = _opt(obj, path, kind, prefix=prefix)
    if value is None:
        raise _invalid(_field(path, prefix), f"expected {_names(kind)}")
    return value


def _opt(obj: Any, path: str, kind: type | tuple[type, ...], *, prefix: str = "") -> Any:
    """The value at `path`, or None when it is missing or null; of another type: InvalidTicket."""
    value = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _invalid(_field(path, prefix), f"expected {_names(kind)}")
    return value


def _field(path: str, prefix: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def _names(kind: type | tuple[type, ...]) -> str:
    return kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)


def _invalid(field: str, error: str) -> InvalidTicket:
    return InvalidTicket(f"invalid payload ({field}: {error})", [{"field": field, "error": error}])


def _text(description: Any) -> str:
    """Jira's description: a string (API v2) or an Atlassian Document Format tree (v3), read
    without recursion and within `_MAX_NODES`; nodes of other shapes are skipped."""
    if isinstance(description, str):
        return description
    out: list[str] = []
    stack, seen = [description], 0
    while stack and seen < _MAX_NODES:
        node, seen = stack.pop(), seen + 1
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("text"), str):
            out.append(node["text"])
        content = node.get("content")
        if isinstance(content, list):
            stack.extend(reversed(content))
    return " ".join(out)
