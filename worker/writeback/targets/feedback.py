"""The feedback stream (`triage:feedback`): every human label applied, once, whichever channel
brought it (the API, the review desk, a relabel seen in GitHub, Jira or Zendesk). `triage drift`
counts corrections from it; training reads people's labels from it."""

from __future__ import annotations

from typing import Any

import redis

from producer.names import FEEDBACK_STREAM
from worker.writeback.item import Item

# Add the entry unless this revision's entry was added already (KEYS[2], the `written` hash,
# field ARGV[1]), and say so in the same step: a crash between the two cannot add it twice.
ADD_ONCE = """
local done = redis.call('HGET', KEYS[2], ARGV[1])
if done then return done end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('HSET', KEYS[2], ARGV[1], id)
return id
"""


class Feedback:
    name = "feedback"

    def may_act(self, item: Item) -> bool:
        return item.by_human and bool(item.result.label)

    def write(self, r: redis.Redis, todo: list[Item], deadline: float) -> None:
        people = [item for item in todo if self.may_act(item)]
        for item in todo:
            if item not in people:
                item.outcomes[self.name] = "none"
        if not people:
            return
        add_once = r.register_script(ADD_ONCE)
        pipe = r.pipeline(transaction=False)
        for item in people:
            fields = [part for pair in feedback_fields(item).items() for part in pair]
            add_once(keys=[FEEDBACK_STREAM, item.key], args=[self.name, *fields], client=pipe)
        for item, entry_id in zip(people, pipe.execute(), strict=True):
            item.outcomes[self.name] = str(entry_id)
            item.recorded.add(self.name)


def feedback_fields(item: Item) -> dict[str, Any]:
    """The fields of a human label's entry on the feedback stream."""
    result = item.result
    return {
        "task": result.task,
        "source": result.source,
        "ticket_id": result.ticket_id,
        "label": result.label or "",
        "labelled_by": result.labelled_by or "",
        "via": result.via or "",
        "text": item.ticket.text,
        "note": result.reason or "",
        "at": result.decided_at.isoformat(),
    }
