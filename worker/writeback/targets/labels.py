"""The label plan shared by the ticket-system targets: what to add and remove in one task's
namespace (``<prefix><task>:<label>``, `producer.namespace`), or why not to write at all."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from producer import namespace
from producer.schemas import TriageResult
from worker.settings import WorkerSettings


@dataclass(frozen=True)
class Plan:
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    #: Why nothing is written: ``already-set``, ``human-marked`` or ``changed-since-revision``.
    skip: str | None = None


def plan(
    current: Iterable[str],
    seen: Iterable[str],
    want: str,
    *,
    ours: Callable[[str], bool],
    marker: str,
    by_human: bool,
) -> Plan:
    """Compare the ticket's labels now with those it had at the classified revision (`seen`).

    Only labels in this task's namespace (`ours`) are ours to change; the `marker` is global and
    no task's. When ours differ from what we saw, a person (or another run) changed them since:
    leave the ticket alone. A human result overrides that.
    """
    now = list(current)
    ours_now = {lb for lb in now if ours(lb) and lb != marker}
    if ours_now == {want}:
        return Plan(skip="already-set")  # a redelivered write-back, or a human agreed
    if not by_human:
        if marker in now:
            return Plan(skip="human-marked")
        ours_seen = {lb for lb in seen if ours(lb) and lb != marker}
        if ours_now != ours_seen:
            return Plan(skip="changed-since-revision")
    return Plan(add=[] if want in ours_now else [want], remove=sorted(ours_now - {want}))


def plan_for(
    current: Iterable[str],
    seen: Iterable[str],
    result: TriageResult,
    settings: WorkerSettings,
    form: namespace.Form = str,
) -> Plan:
    """`plan` for writing `result` in its task's namespace, each name in the system's `form` of
    a label (Zendesk's tags are lower case)."""
    assert result.label is not None
    prefix, task = settings.source_label_prefix, result.task
    return plan(
        current,
        seen,
        namespace.label_name(prefix, task, result.label, form),
        ours=lambda name: namespace.owned(name, prefix, task, form),
        marker=form(settings.source_human_marker),
        by_human=result.decided_by == "human",
    )


def names(value: Any) -> list[str]:
    """The strings of a list (labels as a payload or the API gave them); anything else: none."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
