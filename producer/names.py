"""Task and queue names: the contract between producers and workers.

Producers send by name (``send_task(CLASSIFY_TASK, ...)``) so they never import the worker.
"""

from __future__ import annotations

CLASSIFY_TASK = "triage.classify"
ESCALATE_TASK = "triage.escalate"
WRITEBACK_TASK = "triage.writeback"
#: The name `triage.writeback` had for a batch's results before it took batches itself: still
#: served, for messages queued by an older worker; nothing sends it now.
WRITEBACK_BATCH_TASK = "triage.writeback_batch"

CLASSIFY_QUEUE = "triage.classify"
ESCALATE_QUEUE = "triage.escalate"
WRITEBACK_QUEUE = "triage.writeback"

#: Every queue the service declares; a route to any other queue is an error.
QUEUES = (CLASSIFY_QUEUE, ESCALATE_QUEUE, WRITEBACK_QUEUE)
ROUTES = {
    CLASSIFY_TASK: CLASSIFY_QUEUE,
    ESCALATE_TASK: ESCALATE_QUEUE,
    WRITEBACK_TASK: WRITEBACK_QUEUE,
    WRITEBACK_BATCH_TASK: WRITEBACK_QUEUE,
}

#: Redis keys. Every key the service writes starts with this prefix.
KEY_PREFIX = "triage"
EVENTS_STREAM = f"{KEY_PREFIX}:events"
DEAD_LETTER_LIST = f"{KEY_PREFIX}:dead"
#: Every human label the write-back applied, once each, from any channel: what `triage drift`
#: counts as corrections and training reads as people's labels.
FEEDBACK_STREAM = f"{KEY_PREFIX}:feedback"


def bell_key(queue: str) -> str:
    """A queue's doorbell: a list that gets a token with every message pushed onto the queue.

    Workers block on the bells (BRPOP), never on the queues, and take messages with a script
    that records them as unacknowledged in the same step (`worker.transport`).
    """
    return f"{KEY_PREFIX}:bell:{queue}"


def result_key(task: str, source: str, ticket_id: str) -> str:
    """Where the latest `TriageResult` of a ticket lives (a JSON string)."""
    return _key("result", task, source, ticket_id)


def ticket_key(task: str, source: str, ticket_id: str) -> str:
    """The ticket as last written back (JSON, its verified `origin` included): what feedback
    and review act on, so no request can name other coordinates."""
    return _key("ticket", task, source, ticket_id)


def label_key(task: str, source: str, ticket_id: str) -> str:
    """A ticket's label state: whether a person labelled it (who, when) and the newest revision
    written back, which decide whether a later result applies (`worker.writeback.decide`)."""
    return _key("label", task, source, ticket_id)


def enqueued_key(channel: str, task: str, source: str, ticket_id: str, revision: str) -> str:
    """Marks a ticket revision as enqueued through `channel`, so enqueueing it again is a no-op.

    Per channel: no one who may enqueue through one channel can pre-claim a revision that
    another channel (a signed webhook) will bring.
    """
    return _key("enqueued", channel, task, source, ticket_id, revision)


def written_key(task: str, source: str, ticket_id: str, revision: str) -> str:
    """A hash of the write-back targets that already took this ticket revision's result."""
    return _key("written", task, source, ticket_id, revision)


def _key(kind: str, *parts: str) -> str:
    """``triage:<kind>:<part>:...`` with ``%`` and ``:`` escaped in each part, so no two
    distinct tuples share a key (an id ``"X:b"`` and revision ``"c"`` against ``"X"`` and
    ``"b:c"``)."""
    return ":".join([KEY_PREFIX, kind, *(escape(p) for p in parts)])


def escape(part: str) -> str:
    """A key part with ``%`` and ``:`` escaped, so it cannot reach into the next part."""
    return part.replace("%", "%25").replace(":", "%3A")
