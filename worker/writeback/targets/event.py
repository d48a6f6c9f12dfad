"""The event stream (`triage:events`): one entry per result, for `triage status`, `triage
drift`, dashboards and anyone who follows decisions as they happen."""

from __future__ import annotations

from typing import Any

import redis

from producer.names import EVENTS_STREAM
from producer.schemas import TriageResult
from worker.settings import get_settings
from worker.writeback.item import Item


class Event:
    name = "event"

    def may_act(self, item: Item) -> bool:
        return True

    def write(self, r: redis.Redis, todo: list[Item], deadline: float) -> None:
        pipe = r.pipeline(transaction=False)
        maxlen = get_settings().events_maxlen
        for item in todo:
            pipe.xadd(EVENTS_STREAM, event_fields(item.result), maxlen=maxlen, approximate=True)
        for item, event_id in zip(todo, pipe.execute(), strict=True):
            item.outcomes[self.name] = str(event_id)


def event_fields(result: TriageResult) -> dict[Any, Any]:
    """The fields of a result's entry on the event stream."""
    return {
        "ticket_id": result.ticket_id,
        "source": result.source,
        "task": result.task,
        "revision": result.revision,
        "label": result.label or "",
        "status": result.status,
        "decided_by": result.decided_by,
        "confidence": f"{result.confidence:.4f}",
        "latency_ms": f"{result.latency_ms or 0.0:.1f}",
    }
