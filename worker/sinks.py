"""Write-back sinks: the result store, the event stream, the source's callback, the index.

Each sink runs at most once per (task, ticket, revision): a hash records the sinks done, so a
retried or redelivered write-back only redoes what had not finished.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import httpx
import numpy as np
import redis

from producer.errors import BrokerUnavailable, SinkRejected, SinkUnavailable
from producer.names import DEAD_LETTER_LIST, EVENTS_STREAM, result_key, written_key
from producer.schemas import SetBy, Ticket, TriageResult
from worker import resources
from worker.settings import get_settings

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
        ("callback", lambda: _callback(ticket, result)),
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


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Signature header value: HMAC-SHA256 over ``<timestamp>.<body>`` (Stripe-style)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


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


def _callback(ticket: Ticket, result: TriageResult) -> str:
    if ticket.callback is None:
        return "none"
    settings = get_settings()
    if settings.callback_secret is None:
        raise SinkRejected("ticket has a callback but TRIAGE_CALLBACK_SECRET is not set")
    body = result.model_dump_json().encode()
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Triage-Signature": sign(settings.callback_secret.get_secret_value(), ts, body),
        "Idempotency-Key": f"{ticket.task}:{ticket.source}:{ticket.id}:{ticket.effective_revision}",
    }
    url = str(ticket.callback)
    try:
        response = _http().post(
            url, content=body, headers=headers, timeout=settings.callback_timeout_s
        )
    except httpx.HTTPError as exc:
        raise SinkUnavailable(f"callback {url} failed: {exc!r}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = _retry_after(response)
        raise SinkUnavailable(
            f"callback {url} answered {response.status_code}", retry_after_s=retry_after
        )
    if response.status_code >= 400:
        raise SinkRejected(
            f"callback {url} refused with {response.status_code}: {response.text[:200]}"
        )
    return f"http {response.status_code}"


def _index(ticket: Ticket, result: TriageResult, vector: list[float]) -> str:
    if result.status != "labelled" or result.label is None or not vector:
        return "skipped"
    from models.index import IndexedTicket

    set_by: SetBy = "human" if result.decided_by == "human" else "model"
    resources.index().upsert(
        ticket.task,
        [IndexedTicket(ticket.id, ticket.source, result.label, ticket.text, set_by)],
        np.asarray([vector], dtype=np.float32),
    )
    return "upserted"


@lru_cache
def _http() -> httpx.Client:
    return httpx.Client(follow_redirects=False)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
