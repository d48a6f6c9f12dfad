"""Our labels in the ticket systems: one namespace per task, ``<prefix><task>:<label>``.

``triage:category:card_arrival`` and ``triage:priority:high`` live side by side on one issue, and
no task touches another's. Zendesk tags are the same names in tag form (`tag`). The "hands off"
marker (``triage:human``) is in no task's namespace. The worker's targets write these names
(`worker.writeback.targets.labels`); the payload adapters read a person's
(`producer.http.payloads`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: Labels written before each task had its namespace (``triage:<label>``) belong to this task.
LEGACY_TASK = "category"
#: A task's name, as `producer.schemas.Name` allows it (no ``:``, so a name splits one way).
_TASK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Form = Callable[[str], str]


def tag(text: str) -> str:
    """Zendesk's tag form of a name: lower case, runs of other characters as one ``_``."""
    return re.sub(r"[^a-z0-9_:-]+", "_", text.lower())


def label_name(prefix: str, task: str, label: str, form: Form = str) -> str:
    """The name of `task`'s `label` in a ticket system, in that system's `form`."""
    return form(f"{prefix}{task}:{label}")


def owned(name: str, prefix: str, task: str, form: Form = str) -> bool:
    """Whether `name` is in `task`'s namespace (a legacy ``<prefix><label>`` is the category
    task's). The human marker is no task's: callers leave it out."""
    if name.startswith(form(f"{prefix}{task}:")):
        return True
    ours = form(prefix)
    return (
        form(task) == form(LEGACY_TASK) and name.startswith(ours) and ":" not in name[len(ours) :]
    )


def parse(name: str, prefix: str, form: Form = str) -> tuple[str, str] | None:
    """``(task, label)`` of one of our namespaced labels (both in `form`); None for any other
    name: another label, the marker, a legacy label, a task name we could not have written."""
    ours = form(prefix)
    if not name.startswith(ours):
        return None
    task, sep, label = name[len(ours) :].partition(":")
    if not sep or not label or not _TASK.fullmatch(task):
        return None
    return task, label
