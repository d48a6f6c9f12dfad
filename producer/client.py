"""The enqueue client: what an existing app calls to have tickets triaged.

It writes Celery protocol-2 messages straight onto the Redis queue (`producer.wire`), sending by
task name, so an app needs neither Celery, kombu nor the worker installed to produce. A call
returns once Redis holds the message, or raises `BrokerUnavailable`. Enqueueing a ticket revision
already enqueued is a no-op.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
import weakref
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
import redis.asyncio as aioredis

from producer import callbacks, wire
from producer.errors import BrokerUnavailable, InvalidTicket
from producer.names import (
    CLASSIFY_QUEUE,
    CLASSIFY_TASK,
    WRITEBACK_QUEUE,
    WRITEBACK_TASK,
    enqueued_key,
)
from producer.schemas import Ticket, TriageResult
from producer.settings import ProducerSettings, get_settings

log = logging.getLogger(__name__)

_TASK_ID_NAMESPACE = uuid.UUID("6f1c2a8e-3c55-4d1e-9d8a-0e7f5b8e2c41")


def enqueue(ticket: Ticket | dict[str, Any], *, force: bool = False) -> str:
    """Send one ticket to the classify queue; return its id once Redis has the message."""
    return enqueue_many([ticket], force=force)[0]


def enqueue_many(tickets: Iterable[Ticket | dict[str, Any]], *, force: bool = False) -> list[str]:
    """Send tickets to the classify queue; return their ids, in order.

    Every ticket is validated before anything is sent, so a bad one (`InvalidTicket`) sends none.
    Revisions already enqueued are skipped (unless `force`); their ids are returned all the same.
    """
    parsed = [t if isinstance(t, Ticket) else Ticket.parse(t) for t in tickets]
    send_tickets(parsed, force=force)
    return [t.id for t in parsed]


async def aenqueue(ticket: Ticket | dict[str, Any], *, force: bool = False) -> str:
    """`enqueue` for asyncio code: runs the blocking publish in a thread."""
    return await asyncio.to_thread(enqueue, ticket, force=force)


async def aenqueue_many(
    tickets: Iterable[Ticket | dict[str, Any]], *, force: bool = False
) -> list[str]:
    """`enqueue_many` for asyncio code: runs the blocking publish in a thread."""
    return await asyncio.to_thread(enqueue_many, list(tickets), force=force)


def send_tickets(
    tickets: Sequence[Ticket],
    *,
    force: bool = False,
    settings: ProducerSettings | None = None,
    channel: str = "producer",
) -> list[bool]:
    """Publish validated tickets; return, per ticket, whether it was sent (False: a duplicate
    that came through the same `channel` before: "producer", "api", "backfill", "webhook:<source>").

    One Redis round trip for the whole list: each revision is claimed and queued atomically, so
    a failure leaves nothing claimed that is not queued, and a retry sends exactly what is missing.
    Raises `QueueFull` (a `BrokerUnavailable`) when the queue is at `TRIAGE_MAX_QUEUE_DEPTH`,
    and `InvalidTicket` naming ``callback`` when a callback may not be called (nothing is sent).
    """
    settings = settings or get_settings()
    refuse_unsafe_callbacks(tickets, settings)
    client = redis_client(settings.resolved_redis_url, settings.broker_timeout_s)
    try:
        sent = wire.push(client, **_classify_push(tickets, settings, channel, force=force))
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis at {_safe(settings)} is unreachable: {exc}") from exc
    _log_skipped(sent)
    return sent


async def asend_tickets(
    tickets: Sequence[Ticket],
    *,
    force: bool = False,
    settings: ProducerSettings | None = None,
    gate: wire.Gate | None = None,
    channel: str = "producer",
) -> list[bool]:
    """`send_tickets` for asyncio code: no thread, the event loop's own Redis connection.

    With a `gate`, nothing is sent if its key was set before (`wire.GateClosed`); it is set in
    the same atomic step as the tickets are queued.
    """
    settings = settings or get_settings()
    await _arefuse_unsafe_callbacks(tickets, settings)
    client = async_redis_client(settings.resolved_redis_url, settings.broker_timeout_s)
    try:
        push = _classify_push(tickets, settings, channel, force=force, gate=gate)
        sent = await wire.apush(client, **push)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis at {_safe(settings)} is unreachable: {exc}") from exc
    _log_skipped(sent)
    return sent


def refuse_unsafe_callbacks(
    tickets: Sequence[Ticket],
    settings: ProducerSettings,
    resolved: dict[tuple[str, int], list[str]] | None = None,
) -> None:
    """Raise `InvalidTicket` (field ``callback``) when a ticket's callback may not be called
    (`producer.callbacks`). `send_tickets` runs it, so every channel does; a caller that
    rejects tickets one by one (a backfill row) may run it first, with a `resolved` cache it
    keeps across calls."""
    allow = settings.callback_allowlist
    resolved = {} if resolved is None else resolved
    errors: list[dict[str, str]] = []
    for n, ticket in enumerate(tickets):
        if ticket.callback is not None:
            try:
                callbacks.check(str(ticket.callback), allow, resolved)
            except callbacks.CallbackRefused as exc:
                errors.append(_callback_error(tickets, n, exc))
    _raise_if(errors)


async def _arefuse_unsafe_callbacks(tickets: Sequence[Ticket], settings: ProducerSettings) -> None:
    """`refuse_unsafe_callbacks` for asyncio code: the lookups do not block the loop."""
    allow = settings.callback_allowlist
    resolved: dict[tuple[str, int], list[str]] = {}
    errors: list[dict[str, str]] = []
    for n, ticket in enumerate(tickets):
        if ticket.callback is not None:
            try:
                await callbacks.acheck(str(ticket.callback), allow, resolved)
            except callbacks.CallbackRefused as exc:
                errors.append(_callback_error(tickets, n, exc))
    _raise_if(errors)


def _callback_error(tickets: Sequence[Ticket], n: int, exc: Exception) -> dict[str, str]:
    where = f"[{n}]." if len(tickets) > 1 else ""
    return {"field": f"{where}callback", "error": str(exc)}


def _raise_if(errors: list[dict[str, str]]) -> None:
    if errors:
        fields = ", ".join(f"{e['field']}: {e['error']}" for e in errors[:5])
        raise InvalidTicket(f"invalid ticket ({fields})", errors)


def _classify_push(
    tickets: Sequence[Ticket],
    settings: ProducerSettings,
    channel: str,
    *,
    force: bool,
    gate: wire.Gate | None = None,
) -> dict[str, Any]:
    """The arguments of `wire.push` / `wire.apush` that queue `tickets` for classification."""
    return {
        "task_name": CLASSIFY_TASK,
        "queue": CLASSIFY_QUEUE,
        "messages": _classify(tickets, channel),
        "ttl_s": settings.dedupe_ttl_s,
        "force": force,
        "gate": gate,
        "max_depth": settings.max_queue_depth,
    }


def _classify(tickets: Sequence[Ticket], channel: str) -> list[wire.Message]:
    """The classify messages of `tickets`."""
    now = datetime.now(UTC).isoformat()
    messages = [
        wire.Message(
            task_id=task_id_for(t),
            kwargs_json=f'{{"ticket": {t.model_dump_json()}, "enqueued_at": "{now}"}}',
            kwargsrepr=f"{{ticket: {t.id}}}",
            dedupe_key=enqueued_key(channel, t.task, t.source, t.id, t.effective_revision),
        )
        for t in tickets
    ]
    return messages


def _log_skipped(sent: list[bool]) -> None:
    skipped = len(sent) - sum(sent)
    if skipped:
        log.info("skipped %d ticket revisions already enqueued", skipped)


def task_id_for(ticket: Ticket) -> str:
    """A stable Celery task id per ticket revision, so traces line up across retries.

    It is `uuid.uuid5` (RFC 4122 name-based, SHA-1), computed without building `UUID` objects,
    which cost the backfill a fifth of its time.
    """
    name = f"{ticket.task}\x1f{ticket.source}\x1f{ticket.id}\x1f{ticket.effective_revision}"
    digest = bytearray(hashlib.sha1(_TASK_ID_NAMESPACE.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def send_writeback(
    ticket: Ticket,
    result: TriageResult,
    *,
    vector: Sequence[float] | None = None,
    settings: ProducerSettings | None = None,
    gate: wire.Gate | None = None,
) -> str:
    """Publish a decided result to the write-back queue (e.g. a human label); return the task id.

    The worker's one write-back path then stores it, emits the event, writes it to the source
    and indexes it, exactly as for a label the cascade decided. With a `gate` (a webhook's
    delivery id), nothing is queued if it was set before (`wire.GateClosed`); it is set in the
    same atomic step as the push.
    """
    settings = settings or get_settings()
    task_id = task_id_for(ticket)
    item = {
        "ticket": ticket.model_dump(mode="json"),
        "result": result.model_dump(mode="json"),
        "vector": list(vector or []),
    }
    kwargs = {"items": [item]}  # `triage.writeback` takes a batch; this is a batch of one
    message = wire.Message(
        task_id=task_id,
        kwargs_json=json.dumps(kwargs),
        kwargsrepr=f"{{ticket: {ticket.id}}}",
    )
    client = redis_client(settings.resolved_redis_url, settings.broker_timeout_s)
    try:
        wire.push(
            client,
            WRITEBACK_TASK,
            WRITEBACK_QUEUE,
            [message],
            ttl_s=settings.dedupe_ttl_s,
            gate=gate,
            max_depth=settings.max_queue_depth,
        )
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis at {_safe(settings)} is unreachable: {exc}") from exc
    return task_id


@lru_cache(maxsize=8)
def redis_client(url: str, timeout_s: float = 5.0) -> redis.Redis:
    """One pooled client per URL and process (redis-py clients are thread-safe)."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
    )


def async_redis_client(url: str, timeout_s: float = 5.0) -> aioredis.Redis:
    """One pooled asyncio client per URL and event loop (its connections belong to the loop)."""
    loop = asyncio.get_running_loop()
    clients = _async_clients.setdefault(loop, {})
    key = (url, timeout_s)
    if key not in clients:
        clients[key] = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
    return clients[key]


_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, float], aioredis.Redis]
] = weakref.WeakKeyDictionary()


def _safe(settings: ProducerSettings) -> str:
    """The Redis URL without a password, for error messages."""
    url = settings.resolved_redis_url
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
