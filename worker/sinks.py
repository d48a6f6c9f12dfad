"""Write-back sinks: the result store, the event stream, the callback, the source system, the index.

Each sink runs at most once per (task, ticket, revision): a hash records the sinks done, so a
retried or redelivered write-back only redoes what had not finished. Two write-backs of the same
revision at the same time (a message redelivered while its first run still goes on, a ticket
classified twice) would both find a sink not done yet, so a lease lets one run at a time: the
other retries once the lease is free, and then finds the work done. The lease expires by itself
when its run dies; a run renews it before each sink and stops if it lost it (it was paused past
its lease, and another run took over). `worker.batch_sinks` does the same for many tickets at
once, with the same keys and scripts.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import redis

from models.vectors import unpack
from producer.errors import BrokerUnavailable, SinkUnavailable
from producer.names import DEAD_LETTER_LIST, EVENTS_STREAM, result_key, written_key
from producer.schemas import SetBy, Ticket, TriageResult
from worker import events_log, resources
from worker.metrics import timed_sink
from worker.settings import get_settings
from worker.sources import write_to_source
from worker.sources.callback import post_callback

log = logging.getLogger(__name__)

WRITTEN_TTL_S = 30 * 24 * 3600

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
# Take the lease (ARGV[1]: our token) or renew it if it is ours; 0 when another run holds it.
TAKE_LEASE = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
# Release the lease only if it is still ours (it may have expired and been taken since).
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class WriteInProgress(SinkUnavailable):
    """Another run is writing this ticket revision back; try again when its lease is free."""


def write_back(
    ticket: Ticket, result: TriageResult, vector: np.ndarray | Sequence[float]
) -> dict[str, str]:
    """Run every sink not yet done for this revision; return what each one did.

    Raises `WriteInProgress` while another run holds the revision's lease.
    """
    vector = unpack(vector)
    r = resources.redis_conn()
    key = written_key(ticket.task, ticket.source, ticket.id, ticket.effective_revision)
    lease = _Lease(r, key + ":lease", get_settings().writeback_lease_s)
    sinks: list[tuple[str, Callable[[], str]]] = [
        ("store", lambda: _store(r, result)),
        ("event", lambda: _event(r, result)),
        ("callback", lambda: post_callback(ticket, result)),
        ("source", lambda: write_to_source(ticket, result)),
        ("index", lambda: index_one(ticket, result, vector)),
    ]
    try:
        try:
            for name, sink in sinks:
                lease.hold()
                # Asked per sink, not once: a run paused past its lease may find it done since.
                if r.hexists(key, name):
                    continue
                record(r, key, name, timed_sink(name, sink))
            done: dict[str, str] = r.hgetall(key)  # type: ignore[assignment]
        finally:
            lease.release()
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable during write-back: {exc}") from exc
    return done


def record(r: redis.Redis, key: str, name: str, outcome: str) -> None:
    """Record that a sink is done. Its side effect has happened: without the record a retry
    would do it again (a second callback), so a Redis blip is waited out, not given up on."""
    deadline = time.monotonic() + get_settings().publish_retry_s
    for attempt in itertools.count():
        try:
            pipe = r.pipeline()
            pipe.hset(key, name, outcome)
            pipe.expire(key, WRITTEN_TTL_S)
            pipe.execute()
            return
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise
            if attempt == 0:
                log.warning("Redis is unreachable; waiting for it to record %s of %s", name, key)
            time.sleep(0.5)


class _Lease:
    def __init__(self, r: redis.Redis, key: str, ttl_s: int) -> None:
        self.r, self.key, self.ttl_s = r, key, ttl_s
        self.token = uuid.uuid4().hex

    def hold(self) -> None:
        """Take or renew the lease for another `ttl_s`; `WriteInProgress` if another run has it."""
        if not self.r.eval(TAKE_LEASE, 1, self.key, self.token, self.ttl_s):
            left_ms = self.r.pttl(self.key)
            raise WriteInProgress(
                f"{self.key} is held by another write-back run",
                retry_after_s=max(0.1, int(left_ms) / 1000.0),
            )

    def release(self) -> None:
        try:
            self.r.eval(RELEASE_LEASE, 1, self.key, self.token)
        except redis.RedisError:
            log.warning("could not release %s; it expires by itself", self.key)


def dead_letter(task_name: str, payload: Any, reason: str) -> None:
    """Park a message that will not succeed, with why, for an operator to inspect or replay."""
    entry = {
        "task": task_name,
        "reason": reason,
        "payload": payload,
        "at": datetime.now(UTC).isoformat(),
    }
    events_log.dead_lettered(task_name, payload, reason)
    try:
        resources.redis_conn().lpush(DEAD_LETTER_LIST, json.dumps(entry, default=str))
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable; cannot dead-letter: {exc}") from exc


def _store(r: redis.Redis, result: TriageResult) -> str:
    stored = r.eval(
        STORE_UNLESS_HUMAN,
        1,
        result_key(result.task, result.source, result.ticket_id),
        result.model_dump_json(),
        result.decided_by,
    )
    return "stored" if stored else "kept-human-label"


def _event(r: redis.Redis, result: TriageResult) -> str:
    event_id = r.xadd(
        EVENTS_STREAM,
        event_fields(result),
        maxlen=get_settings().events_maxlen,
        approximate=True,
    )
    return str(event_id)


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


def index_one(ticket: Ticket, result: TriageResult, vector: np.ndarray) -> str:
    """The index sink of one ticket: upsert its label when it has one worth learning from."""
    if result.status != "labelled" or result.label is None:
        return "skipped"
    set_by: SetBy = "human" if result.decided_by == "human" else "model"
    if not vector.size:
        if set_by != "human":
            return "skipped"
        # Human feedback comes from the HTTP app, which has no models: embed it here.
        vector = np.asarray(resources.embedder().embed([ticket.text])[0], dtype=np.float32)
    from models.index import IndexedTicket

    resources.index().upsert(
        ticket.task,
        [IndexedTicket(ticket.id, ticket.source, result.label, ticket.text, set_by)],
        np.asarray([vector], dtype=np.float32),
    )
    return "upserted"
