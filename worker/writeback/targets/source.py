"""Write-back to the ticket systems tickets came from, chosen by `ticket.source`, written only to
the ticket's verified `origin` (docs/security.md): a ticket without one, or with another
system's, is written nowhere (``skipped``), whatever its metadata says.

Each system's target reads the ticket's current labels first and writes in the task's own
namespace only when no one changed ours since the revision we classified (and no "hands off"
marker is set): a human always wins. The generic signed callback (`callback.py`) is the
fallback for every other source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from producer.schemas import Ticket, TriageResult
from worker.settings import WorkerSettings, get_settings
from worker.writeback.targets import github, jira, zendesk

log = logging.getLogger(__name__)

Writer = Callable[[Ticket, TriageResult, WorkerSettings], str]

WRITERS: dict[str, tuple[Callable[[WorkerSettings], bool], Writer]] = {
    "github": (github.configured, github.write),
    "zendesk": (zendesk.configured, zendesk.write),
    "jira": (jira.configured, jira.write),
}


def has_writer(ticket: Ticket) -> bool:
    """Whether `ticket`'s source is a ticket system we write to (else `write_to_source` does
    nothing for it)."""
    return ticket.source in WRITERS


def write_to_source(ticket: Ticket, result: TriageResult) -> str:
    """Write the label to the ticket's own system; return what happened (for the sink record)."""
    if not has_writer(ticket):
        return "none"
    entry = WRITERS[ticket.source]
    if result.status != "labelled" or result.label is None:
        return "skipped"
    if ticket.origin is None or ticket.origin.system != ticket.source:
        log.info("%s ticket %r has no verified origin: not written back", ticket.source, ticket.id)
        return "skipped"
    configured, write = entry
    settings = get_settings()
    if not configured(settings):
        return "not-configured"
    return write(ticket, result, settings)
