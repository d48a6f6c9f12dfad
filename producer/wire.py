"""Celery messages as they lie on a Redis queue, and one atomic script that dedupes and pushes them.

A Celery worker on Redis pops JSON envelopes (kombu's Redis transport format) from a list named
after the queue. We build those envelopes ourselves and push them with one Lua script per call:
per message, ``SET key NX`` claims the ticket revision and ``LPUSH`` queues it in the same atomic
step. That is one round trip for a whole chunk, and no window in which a revision is claimed but
not queued (kombu's publish needed a claim, a publish and a confirm: three round trips, and
~2 ms of Python per call; the webhook and the backfill are bound by this path). Each message
queued also puts a token on the queue's bell (`producer.names.bell_key`), in the same step, so a
worker waiting on the bell wakes at once (`worker.transport`).
"""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from producer.errors import QueueFull
from producer.names import bell_key

# KEYS[1]: the queue; KEYS[2]: its bell; KEYS[3]: a gate key or ""; KEYS[4..n+3]: per message, its
# dedupe key or "".
# ARGV[1]: dedupe ttl (s); ARGV[2]: "1" to send even when a dedupe key exists; ARGV[3]: gate ttl;
# ARGV[4]: most messages the queue may hold (0: no cap); ARGV[5..]: the messages. Returns -1 when
# the gate key was already set (nothing queued), else per message 1 (queued) or 0 (a duplicate,
# not queued). A full queue is an error reply, checked first, so nothing (not even the gate) is
# set: the sender's retry is taken once there is room.
_PUSH_SCRIPT = """
local ttl, force, cap, out = ARGV[1], ARGV[2] == '1', tonumber(ARGV[4]), {}
if cap > 0 then
  local depth = redis.call('LLEN', KEYS[1])
  -- An empty queue always takes the call, so a call bigger than the cap is not refused forever.
  if depth > 0 and depth + #ARGV - 4 > cap then
    return redis.error_reply('QUEUEFULL ' .. depth)
  end
end
if KEYS[3] ~= '' and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) then
  return -1
end
for i = 5, #ARGV do
  local key = KEYS[i - 1]
  local fresh = true
  if key ~= '' then
    if force then
      redis.call('SET', key, 'sent', 'EX', ttl)
    else
      fresh = redis.call('SET', key, 'sent', 'NX', 'EX', ttl) ~= false
    end
  end
  if fresh then
    redis.call('LPUSH', KEYS[1], ARGV[i])
    redis.call('LPUSH', KEYS[2], '1')
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

_EMBED = '{"callbacks": null, "errbacks": null, "chain": null, "chord": null}'


class GateClosed(Exception):
    """The call's gate key was set before (e.g. a webhook delivery already received)."""


@dataclass(frozen=True)
class Gate:
    """A key set in the same atomic step as the push; if it is already set, nothing is queued."""

    key: str
    ttl_s: int


@dataclass(frozen=True)
class Message:
    """One task message: its id, its kwargs as a JSON object text, and a short repr for logs."""

    task_id: str
    kwargs_json: str
    kwargsrepr: str = "{}"
    #: Redis key that marks it sent; a message whose key exists is not queued again.
    dedupe_key: str = ""


def envelope(task_name: str, queue: str, message: Message) -> str:
    """The JSON envelope kombu's Redis transport writes for a Celery protocol-2 message.

    Written from a template rather than by `json.dumps` of nested dicts (3x faster, and the
    backfill spends most of its time here); only the log repr can hold characters JSON escapes.
    Task and queue names are plain identifiers (`producer.names`).
    """
    body = base64.b64encode(f"[[], {message.kwargs_json}, {_EMBED}]".encode()).decode()
    task_id = message.task_id
    return (
        f'{{"body": "{body}", "content-encoding": "utf-8", "content-type": "application/json", '
        f'"headers": {{"lang": "py", "task": "{task_name}", "id": "{task_id}", '
        f'"root_id": "{task_id}", "parent_id": null, "group": null, "shadow": null, '
        f'"eta": null, "expires": null, "retries": 0, "timelimit": [null, null], '
        f'"argsrepr": "()", "kwargsrepr": {json.dumps(message.kwargsrepr)}, '
        f'"origin": {_origin()}, "ignore_result": true}}, '
        f'"properties": {{"correlation_id": "{task_id}", "delivery_mode": 2, '
        f'"delivery_info": {{"exchange": "", "routing_key": "{queue}"}}, "priority": 0, '
        # kombu's consumer keys its unacked messages by this tag: unique, like its uuid4.
        f'"body_encoding": "base64", "delivery_tag": "{os.urandom(16).hex()}"}}}}'
    )


def push(
    client: redis.Redis,
    task_name: str,
    queue: str,
    messages: Sequence[Message],
    *,
    ttl_s: int,
    force: bool = False,
    gate: Gate | None = None,
    max_depth: int = 0,
) -> list[bool]:
    """Queue `messages` unless their dedupe key is set; return, per message, whether it was queued.

    Atomic per call: either every fresh message is queued and its key (and the gate) set, or
    (Redis failed, the queue is full) none is. Raises `GateClosed` when the gate was set before,
    `QueueFull` when the queue holds messages and these would take it past `max_depth` (0: no
    cap), and `redis.RedisError` when Redis does not answer.
    """
    # redis-py's Script sends EVALSHA and loads the text again after NOSCRIPT (a restarted
    # Redis), so the script travels once, not with every call.
    keys, args = _script_input(task_name, queue, messages, ttl_s, force, gate, max_depth)
    try:
        return _queued(client.register_script(_PUSH_SCRIPT)(keys=keys, args=args))
    except redis.ResponseError as exc:
        raise _full_or(exc, queue, max_depth) from exc


async def apush(
    client: aioredis.Redis,
    task_name: str,
    queue: str,
    messages: Sequence[Message],
    *,
    ttl_s: int,
    force: bool = False,
    gate: Gate | None = None,
    max_depth: int = 0,
) -> list[bool]:
    """`push` for asyncio code, on a `redis.asyncio` client."""
    keys, args = _script_input(task_name, queue, messages, ttl_s, force, gate, max_depth)
    try:
        return _queued(await client.register_script(_PUSH_SCRIPT)(keys=keys, args=args))
    except redis.ResponseError as exc:
        raise _full_or(exc, queue, max_depth) from exc


def _script_input(
    task_name: str,
    queue: str,
    messages: Sequence[Message],
    ttl_s: int,
    force: bool,
    gate: Gate | None,
    max_depth: int,
) -> tuple[list[str], list[Any]]:
    keys = [queue, bell_key(queue), gate.key if gate else "", *(m.dedupe_key for m in messages)]
    args: list[Any] = [ttl_s, "1" if force else "0", gate.ttl_s if gate else 0, max_depth]
    args += [envelope(task_name, queue, m) for m in messages]
    return keys, args


def _queued(reply: Any) -> list[bool]:
    if reply == -1:
        raise GateClosed()
    return [bool(q) for q in reply]


def _full_or(exc: redis.ResponseError, queue: str, max_depth: int) -> Exception:
    """`QueueFull` for the script's full-queue reply; any other error as it is."""
    word, _, depth = str(exc).partition(" ")
    if word != "QUEUEFULL":
        return exc
    return QueueFull(
        f"queue {queue} holds {depth} messages, at its cap of {max_depth} "
        "(TRIAGE_MAX_QUEUE_DEPTH): the workers are behind; retry later",
        retry_after_s=5.0,
    )


def _origin() -> str:
    # JSON text; the pid of now, as producers fork (gunicorn, Celery).
    pid = os.getpid()
    if pid != _ORIGIN[0]:
        _ORIGIN[:] = [pid, json.dumps(f"{pid}@{socket.gethostname()}")]
    return str(_ORIGIN[1])


_ORIGIN: list[Any] = [None, ""]
