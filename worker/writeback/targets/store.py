"""The result store: the latest `TriageResult` of a ticket, where `get_result` reads it; and the
ticket as last written back (`producer.names.ticket_key`, its verified `origin` with it), which
feedback and review act on."""

from __future__ import annotations

import json

import redis

from producer.names import result_key, ticket_key
from producer.schemas import Ticket
from worker.writeback.item import Item

# Never replace a label a human set: only a human result may overwrite a human one. (The gate
# decided this already, `worker.writeback.decide`; this keeps it true for runs that raced it.)
STORE_UNLESS_HUMAN = """
local cur = redis.call('GET', KEYS[1])
if cur and ARGV[2] ~= 'human' then
  local ok, obj = pcall(cjson.decode, cur)
  if ok and obj['decided_by'] == 'human' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[3])
return 1
"""


class Store:
    name = "store"

    def may_act(self, item: Item) -> bool:
        return True

    def write(self, r: redis.Redis, todo: list[Item], deadline: float) -> None:
        tickets = _tickets(r, todo)
        store = r.register_script(STORE_UNLESS_HUMAN)
        pipe = r.pipeline(transaction=False)
        for item, ticket in zip(todo, tickets, strict=True):
            res = item.result
            keys = [result_key(res.task, res.source, res.ticket_id), _ticket_key(item.ticket)]
            store(keys=keys, args=[res.model_dump_json(), res.decided_by, ticket], client=pipe)
        for item, stored in zip(todo, pipe.execute(), strict=True):
            item.outcomes[self.name] = "stored" if stored else "kept-human-label"


def _tickets(r: redis.Redis, todo: list[Item]) -> list[str]:
    """Each ticket as JSON to store. A ticket without an origin (a person's label sent without
    one) keeps the origin stored before: nothing but a verified channel sets or changes it."""
    bare = [item for item in todo if item.ticket.origin is None]
    stored = (
        dict(zip(bare, r.mget([_ticket_key(i.ticket) for i in bare]), strict=True)) if bare else {}
    )
    out = []
    for item in todo:
        ticket = item.ticket
        if (raw := stored.get(item)) is not None:
            try:
                origin = json.loads(raw)["origin"]
                if origin is not None:
                    data = {**ticket.model_dump(mode="json"), "origin": origin}
                    ticket = Ticket.model_validate(data)
            except (ValueError, TypeError, KeyError):
                pass  # unreadable: this ticket replaces it
        out.append(ticket.model_dump_json())
    return out


def _ticket_key(ticket: Ticket) -> str:
    return ticket_key(ticket.task, ticket.source, ticket.id)
