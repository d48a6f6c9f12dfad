"""The event stream (`triage:events`): one entry per result, for `triage status`, `triage
drift`, dashboards and anyone who follows decisions as they happen."""

from __future__ import annotations

import json
from typing import Any

import redis

from producer.names import EVENTS_STREAM
from producer.schemas import TriageResult
from worker.settings import get_settings
from worker.writeback.item import Item

# One call for the batch. KEYS[1]: the stream; ARGV: its approximate max length, and a JSON
# array of each entry's fields as [name, value, ...]. Returns the entries' ids as a JSON array.
ADD_ALL = """
local ids = {}
for i, fields in ipairs(cjson.decode(ARGV[2])) do
  ids[i] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
end
return cjson.encode(ids)
"""


class Event:
    name = "event"

    def may_act(self, item: Item) -> bool:
        return True

    def write(self, r: redis.Redis, todo: list[Item], deadline: float) -> None:
        entries = [[x for pair in event_fields(i.result).items() for x in pair] for i in todo]
        ids = r.register_script(ADD_ALL)(
            keys=[EVENTS_STREAM],
            args=[get_settings().events_maxlen, json.dumps(entries, ensure_ascii=False)],
        )
        for item, event_id in zip(todo, json.loads(ids), strict=True):
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
