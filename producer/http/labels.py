"""Which labels a person may set: a configured task's label set (`TRIAGE_LABELS`), whichever
channel the label comes through (feedback, a relabel seen in a ticket system)."""

from __future__ import annotations

from collections.abc import Mapping

from producer import namespace
from producer.errors import InvalidTicket
from producer.labelset import LabelSet


def allowed_label(
    labels: Mapping[str, LabelSet], task: str, label: str, form: namespace.Form = str
) -> str:
    """`label` as its task's label set spells it, matched in the channel's `form` (Zendesk
    holds tags in lower case); `InvalidTicket` (422) listing the tasks or labels allowed."""
    found = labels.get(task)
    if found is None:
        raise _not_allowed("task", f"unknown task {task!r}", sorted(labels))
    if label in found:
        return label
    same = [name for name in found.names if form(name) == label]
    if len(same) != 1:
        raise _not_allowed("label", f"{label!r} is not a {task} label", found.names)
    return same[0]


def _not_allowed(field: str, error: str, allowed: list[str]) -> InvalidTicket:
    # The label sets are configuration, not secrets: naming them lets the sender fix the call.
    return InvalidTicket(
        f"{field}: {error}", [{"field": field, "error": error, "allowed": ", ".join(allowed)}]
    )
