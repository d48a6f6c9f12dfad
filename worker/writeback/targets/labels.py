"""The label plan shared by the adapters: what to add and remove, or why not to write at all."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

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
    label: str,
    *,
    prefix: str,
    marker: str,
    by_human: bool,
) -> Plan:
    """Compare the ticket's labels now with those it had at the classified revision (`seen`).

    Only labels with our `prefix` are ours to change. When ours differ from what we saw, a person
    (or another run) changed them since: leave the ticket alone. A human result overrides that.
    """
    now = set(current)
    want = prefix + label
    ours_now = {lb for lb in now if lb.startswith(prefix) and lb != marker}
    if ours_now == {want}:
        return Plan(skip="already-set")  # a redelivered write-back, or a human agreed
    if not by_human:
        if marker in now:
            return Plan(skip="human-marked")
        ours_seen = {lb for lb in seen if lb.startswith(prefix) and lb != marker}
        if ours_now != ours_seen:
            return Plan(skip="changed-since-revision")
    return Plan(add=[] if want in ours_now else [want], remove=sorted(ours_now - {want}))


def plan_for(
    current: Iterable[str],
    seen: Iterable[str],
    result: TriageResult,
    settings: WorkerSettings,
    form: Callable[[str], str] = str,
) -> Plan:
    """`plan` for writing `result` with our prefix and marker, each in the system's `form` of a
    label (Zendesk's tags are lower case)."""
    assert result.label is not None
    return plan(
        current,
        seen,
        form(result.label),
        prefix=form(settings.source_label_prefix),
        marker=form(settings.source_human_marker),
        by_human=result.decided_by == "human",
    )
