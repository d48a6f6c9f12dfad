"""The result store: the latest `TriageResult` of a ticket, where `get_result` reads it; and the
ticket as last written back (`producer.names.ticket_key`, its verified `origin` with it), which
feedback and review act on."""

from __future__ import annotations

import json
from typing import cast

import redis

from producer.names import result_key, ticket_key
from producer.schemas import Ticket
from worker.writeback.item import Item

# Never replace a label a human set: only a human result may overwrite a human one. (The gate
# decided this already, `worker.writeback.decide`; this keeps it true for runs that raced it.)
# One call for the batch. KEYS: each ticket's result key and ticket key, in turn; ARGV: each
# ticket's result JSON, decided_by and ticket JSON, in turn. Returns per ticket 1 when stored.
STORE_UNLESS_HUMAN = """
local stored = {}
for i = 1, #KEYS / 2 do
  local result_key, by = KEYS[2 * i - 1], ARGV[3 * i - 1]
  local cur = redis.call('GET', result_key)
  local kept = false
  if cur and by ~= 'human' then
    local ok, obj = pcall(cjson.decode, cur)
    kept = ok and obj['decided_by'] == 'human'
  end
  if kept then
    stored[i] = 0
  else
    redis.call('SET', result_key, ARGV[3 * i - 2])
    redis.call('SET', KEYS[2 * i], ARGV[3 * i])
    stored[i] = 1
  end
end
return stored
"""


class Store:
    name = "store"

    def may_act(self, item: Item) -> bool:
        return True

    def write(self, r: redis.Redis, todo: list[Item], deadline: float) -> None:
        keys: list[str] = []
        args: list[str] = []
        for item, ticket in zip(todo, _tickets(r, todo), strict=True):
            res = item.result
            keys += (result_key(res.task, res.source, res.ticket_id), _ticket_key(item.ticket))
            args += (res.model_dump_json(), res.decided_by, ticket)
        stored = r.register_script(STORE_UNLESS_HUMAN)(keys=keys, args=args)
        for item, one in zip(todo, cast(list[int], stored), strict=True):
            item.outcomes[self.name] = "stored" if one else "kept-human-label"


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
