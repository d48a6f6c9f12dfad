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


def bell_key(queue: str) -> str:
    """A queue's doorbell: a list that gets a token with every message pushed onto the queue.

    Workers block on the bells (BRPOP), never on the queues, and take messages with a script
    that records them as unacknowledged in the same step (`worker.transport`).
    """
    return f"{KEY_PREFIX}:bell:{queue}"


def result_key(task: str, source: str, ticket_id: str) -> str:
    """Where the latest `TriageResult` of a ticket lives (a JSON string)."""
    return f"{KEY_PREFIX}:result:{task}:{source}:{ticket_id}"


def enqueued_key(task: str, source: str, ticket_id: str, revision: str) -> str:
    """Marks a ticket revision as enqueued, so enqueueing it again is a no-op."""
    return f"{KEY_PREFIX}:enqueued:{task}:{source}:{ticket_id}:{revision}"


def written_key(task: str, source: str, ticket_id: str, revision: str) -> str:
    """A hash of the sinks that already took this ticket revision's result."""
    return f"{KEY_PREFIX}:written:{task}:{source}:{ticket_id}:{revision}"
