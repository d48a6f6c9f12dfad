"""The enqueue client: what an existing app calls to have tickets triaged.

It speaks Celery's message protocol (v2) through kombu, sending by task name, so an app needs
neither Celery nor the worker installed to produce. A call returns once Redis holds the message,
or raises `BrokerUnavailable`. Enqueueing a ticket revision already enqueued is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
from kombu import Connection, Exchange, Queue
from kombu.pools import producers

from producer.errors import BrokerUnavailable
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
# Between claiming a revision and Redis confirming the message: long enough to publish, short
# enough that a producer that died in between does not block a retry for long.
_CLAIM_TTL_S = 60


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
    tickets: Sequence[Ticket], *, force: bool = False, settings: ProducerSettings | None = None
) -> list[bool]:
    """Publish validated tickets; return, per ticket, whether it was sent (False: a duplicate)."""
    settings = settings or get_settings()
    client = redis_client(settings.resolved_redis_url, settings.broker_timeout_s)
    keys = [enqueued_key(t.task, t.source, t.id, t.effective_revision) for t in tickets]
    try:
        if force:
            claimed = [True] * len(tickets)
        else:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, "claimed", nx=True, ex=_CLAIM_TTL_S)
            claimed = [bool(ok) for ok in pipe.execute()]
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis at {_safe(settings)} is unreachable: {exc}") from exc

    to_send = [(t, k) for t, k, ok in zip(tickets, keys, claimed, strict=True) if ok]
    sent: list[str] = []
    try:
        _publish(
            CLASSIFY_QUEUE,
            CLASSIFY_TASK,
            _classify_messages([t for t, _ in to_send]),
            settings,
        )
        sent = [k for _, k in to_send]
        if sent:
            pipe = client.pipeline(transaction=False)
            for key in sent:
                pipe.set(key, "sent", ex=settings.dedupe_ttl_s)
            pipe.execute()
    except (BrokerUnavailable, redis.RedisError) as exc:
        # Release the claims so that the caller's retry is not taken for a duplicate.
        unsent = [k for _, k in to_send if k not in set(sent)]
        if unsent:
            try:
                client.delete(*unsent)
            except redis.RedisError:
                log.warning(
                    "could not release %d enqueue claims; they expire in %ss",
                    len(unsent),
                    _CLAIM_TTL_S,
                )
        if isinstance(exc, BrokerUnavailable):
            raise
        raise BrokerUnavailable(f"Redis at {_safe(settings)} is unreachable: {exc}") from exc
    skipped = len(tickets) - len(to_send)
    if skipped:
        log.info("skipped %d ticket revisions already enqueued", skipped)
    return claimed


def task_id_for(ticket: Ticket) -> str:
    """A stable Celery task id per ticket revision, so traces line up across retries."""
    name = f"{ticket.task}\x1f{ticket.source}\x1f{ticket.id}\x1f{ticket.effective_revision}"
    return str(uuid.uuid5(_TASK_ID_NAMESPACE, name))


def celery_message(
    task_name: str, task_id: str, kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Body and headers of a Celery protocol-2 message."""
    headers: dict[str, Any] = {
        "lang": "py",
        "task": task_name,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "shadow": None,
        "eta": None,
        "expires": None,
        "retries": 0,
        "timelimit": [None, None],
        "argsrepr": "()",
        "kwargsrepr": f"{{ticket: {kwargs.get('ticket', {}).get('id', '?')}}}",
        "origin": f"{os.getpid()}@{socket.gethostname()}",
        "ignore_result": True,
    }
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return [[], kwargs, embed], headers


def send_writeback(
    ticket: Ticket,
    result: TriageResult,
    *,
    vector: Sequence[float] | None = None,
    settings: ProducerSettings | None = None,
) -> str:
    """Publish a decided result to the write-back queue (e.g. a human label); return the task id.

    The worker's write-back sinks then store it, emit the event, write it to the source and
    index it, exactly as for a label the cascade decided.
    """
    settings = settings or get_settings()
    task_id = task_id_for(ticket)
    kwargs = {
        "ticket": ticket.model_dump(mode="json"),
        "result": result.model_dump(mode="json"),
        "vector": list(vector or []),
    }
    _publish(WRITEBACK_QUEUE, WRITEBACK_TASK, [(task_id, kwargs)], settings)
    return task_id


def _publish(
    queue_name: str,
    task_name: str,
    messages: Sequence[tuple[str, dict[str, Any]]],
    settings: ProducerSettings,
) -> None:
    """Publish `(task id, kwargs)` messages for `task_name` onto `queue_name`."""
    if not messages:
        return
    queue = Queue(queue_name, Exchange(queue_name, type="direct"), queue_name)
    conn = _connection(settings.broker_url, settings.broker_timeout_s)
    try:
        with (
            producers[conn].acquire(block=True, timeout=settings.broker_timeout_s) as producer,
            _batch(producer, len(messages)),
        ):
            for n, (task_id, kwargs) in enumerate(messages):
                body, headers = celery_message(task_name, task_id, kwargs)
                # The anonymous exchange pushes straight onto the queue's list: no binding
                # to lose if Redis restarts empty (Celery does the same for direct queues).
                producer.publish(
                    body,
                    exchange="",
                    routing_key=queue_name,
                    declare=[queue] if n == 0 else [],  # once per call is enough
                    serializer="json",
                    headers=headers,
                    correlation_id=task_id,
                    retry=True,
                    retry_policy={
                        "max_retries": 2,
                        "interval_start": 0.1,
                        "interval_step": 0.2,
                        "interval_max": 0.5,
                    },
                )
    except (*conn.connection_errors, *conn.channel_errors, OSError) as exc:
        raise BrokerUnavailable(
            f"the broker at {_safe(settings)} did not take the message: {exc}"
        ) from exc


def _batch(producer: Any, size: int) -> AbstractContextManager[Any]:
    """One Redis pipeline for many messages (kombu >= 5.6), else one round trip each."""
    if size > 1 and hasattr(producer, "batch"):
        return producer.batch(max_size=min(size, 1000))  # type: ignore[no-any-return]
    return nullcontext()


def _classify_messages(tickets: Sequence[Ticket]) -> list[tuple[str, dict[str, Any]]]:
    now = datetime.now(UTC).isoformat()
    return [
        (task_id_for(t), {"ticket": t.model_dump(mode="json"), "enqueued_at": now}) for t in tickets
    ]


@lru_cache(maxsize=8)
def _connection(url: str, timeout_s: float) -> Connection:
    return Connection(
        url,
        connect_timeout=timeout_s,
        transport_options={"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s},
    )


@lru_cache(maxsize=8)
def redis_client(url: str, timeout_s: float = 5.0) -> redis.Redis:
    """One pooled client per URL and process (redis-py clients are thread-safe)."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
    )


def _safe(settings: ProducerSettings) -> str:
    """The Redis URL without a password, for error messages."""
    url = settings.resolved_redis_url
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
