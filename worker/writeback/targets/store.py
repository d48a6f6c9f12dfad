"""The result store: the latest `TriageResult` of a ticket, where `get_result` reads it."""

from __future__ import annotations

import redis

from producer.names import result_key
from worker.writeback.item import Item

# Never replace a label a human set: only a human result may overwrite a human one.
STORE_UNLESS_HUMAN = """
local cur = redis.call('GET', KEYS[1])
if cur and ARGV[2] ~= 'human' then
  local ok, obj = pcall(cjson.decode, cur)
  if ok and obj['decided_by'] == 'human' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class Store:
    name = "store"

    def write(self, r: redis.Redis, todo: list[Item], deadline: float) -> None:
        pipe = r.pipeline(transaction=False)
        for item in todo:
            res = item.result
            key = result_key(res.task, res.source, res.ticket_id)
            pipe.eval(STORE_UNLESS_HUMAN, 1, key, res.model_dump_json(), res.decided_by)
        for item, stored in zip(todo, pipe.execute(), strict=True):
            item.outcomes[self.name] = "stored" if stored else "kept-human-label"
