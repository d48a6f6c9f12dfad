"""Write-back sinks: the result store, the event stream, the callback, the source system, the index.

Each sink runs at most once per (task, ticket, revision): a hash records the sinks done, so a
retried or redelivered write-back only redoes what had not finished.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import redis

from producer.errors import BrokerUnavailable
from producer.names import DEAD_LETTER_LIST, EVENTS_STREAM, result_key, written_key
from producer.schemas import SetBy, Ticket, TriageResult
from worker import resources
from worker.settings import get_settings
from worker.sources import write_to_source
from worker.sources.callback import post_callback

log = logging.getLogger(__name__)

WRITTEN_TTL_S = 30 * 24 * 3600

# Never replace a label a human set: only a human result may overwrite a human one.
_STORE_UNLESS_HUMAN = """
local cur = redis.call('GET', KEYS[1])
if cur and ARGV[2] ~= 'human' then
  local ok, obj = pcall(cjson.decode, cur)
  if ok and obj['decided_by'] == 'human' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


def write_back(ticket: Ticket, result: TriageResult, vector: list[float]) -> dict[str, str]:
    """Run every sink not yet done for this revision; return what each one did."""
    r = resources.redis_conn()
    key = written_key(ticket.task, ticket.source, ticket.id, ticket.effective_revision)
    sinks: list[tuple[str, Callable[[], str]]] = [
        ("store", lambda: _store(r, result)),
        ("event", lambda: _event(r, result)),
        ("callback", lambda: post_callback(ticket, result)),
        ("source", lambda: write_to_source(ticket, result)),
        ("index", lambda: _index(ticket, result, vector)),
    ]
    try:
        done: dict[str, str] = r.hgetall(key)  # type: ignore[assignment]
        for name, sink in sinks:
            if name in done:
                continue
            done[name] = sink()
            pipe = r.pipeline()
            pipe.hset(key, name, done[name])
            pipe.expire(key, WRITTEN_TTL_S)
            pipe.execute()
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable during write-back: {exc}") from exc
    return done


def dead_letter(task_name: str, payload: Any, reason: str) -> None:
    """Park a message that will not succeed, with why, for an operator to inspect or replay."""
    entry = {
        "task": task_name,
        "reason": reason,
        "payload": payload,
        "at": datetime.now(UTC).isoformat(),
    }
    log.error("dead-lettered %s: %s", task_name, reason)
    try:
        resources.redis_conn().lpush(DEAD_LETTER_LIST, json.dumps(entry, default=str))
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable; cannot dead-letter: {exc}") from exc


def _store(r: redis.Redis, result: TriageResult) -> str:
    stored = r.eval(
        _STORE_UNLESS_HUMAN,
        1,
        result_key(result.task, result.source, result.ticket_id),
        result.model_dump_json(),
        result.decided_by,
    )
    return "stored" if stored else "kept-human-label"


def _event(r: redis.Redis, result: TriageResult) -> str:
    fields: dict[Any, Any] = {
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
    event_id = r.xadd(
        EVENTS_STREAM,
        fields,
        maxlen=get_settings().events_maxlen,
        approximate=True,
    )
    return str(event_id)


def _index(ticket: Ticket, result: TriageResult, vector: list[float]) -> str:
    if result.status != "labelled" or result.label is None:
        return "skipped"
    set_by: SetBy = "human" if result.decided_by == "human" else "model"
    if not vector:
        if set_by != "human":
            return "skipped"
        # Human feedback comes from the HTTP app, which has no models: embed it here.
        vector = [float(x) for x in resources.embedder().embed([ticket.text])[0]]
    from models.index import IndexedTicket

    resources.index().upsert(
        ticket.task,
        [IndexedTicket(ticket.id, ticket.source, result.label, ticket.text, set_by)],
        np.asarray([vector], dtype=np.float32),
    )
    return "upserted"
