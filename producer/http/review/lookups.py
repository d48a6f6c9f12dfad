"""Reads a desk page combines: the task's queue within a reviewer's scope, and the subjects of the
neighbours they may see (from the result store: the ledger keeps only the neighbours' ids)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import redis

from producer.http.review import calls
from producer.http.review.access import Reviewer, redis_of
from producer.http.state import Services
from producer.names import ticket_key

if TYPE_CHECKING:
    from producer.ledger import Ledger
    from producer.ledger.records import ItemView, QueueEntry

#: Items a queue page lists.
LIMIT = 100


async def scoped_queue(
    services: Services, reviewer: Reviewer, task: str, source: str | None, label: str | None
) -> list[QueueEntry]:
    """The task's waiting items the reviewer may take (never one another reviewer holds), in
    sources their `review` scope covers, oldest first."""
    if source is not None:
        if not reviewer.may(source):
            return []
        return await calls.ledger(services, _queue, task, reviewer.name, source, label, LIMIT)
    if "*" not in reviewer.scope:
        found: list[QueueEntry] = []
        for named in sorted(reviewer.scope):
            found += await calls.ledger(services, _queue, task, reviewer.name, named, label, LIMIT)
        found.sort(key=lambda e: (e.item.created_at, e.item.id))
        return found[:LIMIT]
    # "*": every source but the ticket systems not named; read ahead for the ones left out.
    wide = await calls.ledger(services, _queue, task, reviewer.name, None, label, 4 * LIMIT)
    return [e for e in wide if reviewer.may(e.item.source)][:LIMIT]


async def neighbour_subjects(
    services: Services, reviewer: Reviewer, view: ItemView
) -> dict[tuple[str, str], str]:
    """Each cited neighbour's subject, for those in the reviewer's scope that are stored."""
    wanted = [(s, t) for s, t in view.neighbour_ids if reviewer.may(s)]
    if not wanted:
        return {}
    try:
        raws = await redis_of(services).mget([ticket_key(view.item.task, s, t) for s, t in wanted])
    except redis.RedisError:
        return {}  # the page still shows the ids, labels and scores
    subjects: dict[tuple[str, str], str] = {}
    for key, raw in zip(wanted, raws, strict=True):
        if raw is not None:
            subject = json.loads(raw).get("subject")
            subjects[key] = str(subject or "")
    return subjects


def _queue(
    ledger: Ledger, task: str, name: str, source: str | None, label: str | None, limit: int
) -> list[QueueEntry]:
    return ledger.queue(task, reviewer=name, source=source, label=label, limit=limit)
