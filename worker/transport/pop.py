"""The pop script: take the next message of a worker's queues and record it unacked, in one step.

What kombu's BRPOP and its later `QoS.append` (ZADD unacked_index + HSET unacked) did in two
commands, with a worker's death or a Redis restart able to fall between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from producer.names import bell_key

#: What a bell holds; the value does not matter, only how many there are.
BELL_TOKEN = "1"

# KEYS[1]: kombu's unacked hash; KEYS[2]: its unacked index (a sorted set by delivery time);
# KEYS[3 .. 2+nq]: the bells of the nq queues; then the lists to pop in kombu's BRPOP order
# (priority step major, queue minor), so list k belongs to queue (k - first) % nq + 1.
# ARGV[1]: the worker's clock (restore_visible compares scores with it, not Redis's TIME);
# ARGV[2 .. 1+nq]: per queue, '1' to record its messages, '0' (a no_ack consumer) not.
# Returns nil (every list empty) or {list, item, tag}: tag is the delivery tag it was recorded
# under, '' when it was not (no_ack, or not an envelope: the worker quarantines those).
#
# A script that fails halfway keeps what it wrote, so nothing may fail after the RPOP: every
# check (key types) comes before it, and the RPOP is the first write (bar dropping a broken
# bell). That order also keeps consuming on a Redis out of memory (noeviction): Redis refuses a
# memory-growing command in a script only while the script has written nothing, and RPOP and
# DEL are not such commands.
POP_SCRIPT = """
local nq = #ARGV - 1
local first = 3 + nq
local function is(key, kind)
  local t = redis.call('TYPE', key)['ok']
  return t == kind or t == 'none'
end
local at, item
for k = first, #KEYS do
  item = redis.call('LINDEX', KEYS[k], -1)
  if item then at = k break end
end
if not at then
  for j = 1, nq do redis.call('DEL', KEYS[2 + j]) end
  return nil
end
-- Bells are ours and only hints: one of another type is dropped rather than failing below.
for j = 1, nq do
  if not is(KEYS[2 + j], 'list') then redis.call('DEL', KEYS[2 + j]) end
end
if not (is(KEYS[1], 'hash') and is(KEYS[2], 'zset')) then
  return redis.error_reply('WRONGTYPE the unacked keys ' .. KEYS[1] .. ', ' .. KEYS[2])
end
redis.call('RPOP', KEYS[at])
local q = (at - first) % nq + 1
local tag = ''
if ARGV[1 + q] == '1' then
  local ok, env = pcall(cjson.decode, item)
  local props = ok and type(env) == 'table' and env['properties']
  local info = type(props) == 'table' and props['delivery_info']
  if type(info) == 'table' and type(props['delivery_tag']) == 'string'
      and type(info['exchange']) == 'string' and type(info['routing_key']) == 'string' then
    tag = props['delivery_tag']
    -- kombu's record, dumps([message._raw, exchange, routing_key]): the item is JSON already.
    local record = '[' .. item .. ', ' .. cjson.encode(info['exchange']) .. ', '
      .. cjson.encode(info['routing_key']) .. ']'
    redis.call('HSET', KEYS[1], tag, record)
    redis.call('ZADD', KEYS[2], ARGV[1], tag)
  end
end
-- Keep at least one token on a queue that still holds messages: a worker woken by a token may
-- have popped another of its queues, and its BRPOP took one token already. Tokens beyond that
-- track messages (one removed per message taken); an empty queue needs none.
for j = 1, nq do
  local left = 0
  for k = first + j - 1, #KEYS, nq do left = left + redis.call('LLEN', KEYS[k]) end
  local bell = KEYS[2 + j]
  if left == 0 then
    redis.call('DEL', bell)
  else
    local tokens = redis.call('LLEN', bell)
    if tokens == 0 then
      redis.call('LPUSH', bell, '1')
    elseif j == q and tokens > 1 then
      redis.call('RPOP', bell)
    end
  end
end
return {KEYS[at], item, tag}
"""


@dataclass(frozen=True)
class PopCall:
    """The keys and arguments of one run of `POP_SCRIPT` over `queues`."""

    keys: list[str]
    args: list[str]


def pop_call(
    queues: Sequence[str],
    lists: Sequence[str],
    record: Sequence[bool],
    now_s: float,
    unacked_key: str,
    unacked_index_key: str,
) -> PopCall:
    """`lists` in kombu's order (every queue's list for one priority step, then the next step).

    `record[i]` says whether `queues[i]`'s messages are recorded unacked (not for no_ack).
    """
    keys = [unacked_key, unacked_index_key, *(bell_key(q) for q in queues), *lists]
    args = [repr(now_s), *("1" if r else "0" for r in record)]
    return PopCall(keys, args)
