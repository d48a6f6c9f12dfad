"""Reading results back: the result store is a Redis string per ticket (JSON `TriageResult`), and
the ticket as last written back (JSON `Ticket`), which feedback and review act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from producer.client import redis_client
from producer.errors import BrokerUnavailable
from producer.names import result_key, ticket_key
from producer.schemas import Ticket, TriageResult
from producer.settings import ProducerSettings, get_settings


def get_result(
    ticket_id: str,
    source: str = "api",
    task: str = "category",
    *,
    settings: ProducerSettings | None = None,
) -> TriageResult | None:
    """The ticket's latest result, or None while it is not decided yet."""
    raw = _read(settings, lambda client: client.get(result_key(task, source, ticket_id)))
    return None if raw is None else TriageResult.model_validate_json(raw)


def get_ticket(
    task: str, source: str, ticket_id: str, *, settings: ProducerSettings | None = None
) -> Ticket | None:
    """The ticket as the write-back path last stored it (its verified `origin` included), or
    None for a ticket the service has not labelled."""
    raw = _read(settings, lambda client: client.get(ticket_key(task, source, ticket_id)))
    return None if raw is None else Ticket.model_validate_json(raw)


def get_results(
    ticket_ids: list[str],
    source: str = "api",
    task: str = "category",
    *,
    settings: ProducerSettings | None = None,
) -> dict[str, TriageResult]:
    """The results decided so far among `ticket_ids`, in one round trip."""
    if not ticket_ids:
        return {}
    raws = _read(
        settings, lambda client: client.mget([result_key(task, source, tid) for tid in ticket_ids])
    )
    return {
        tid: TriageResult.model_validate_json(raw)
        for tid, raw in zip(ticket_ids, raws, strict=True)
        if raw is not None
    }


def _read(settings: ProducerSettings | None, read: Callable[[redis.Redis], Any]) -> Any:
    """What `read` got from the result store; BrokerUnavailable when Redis does not answer."""
    settings = settings or get_settings()
    client = redis_client(settings.resolved_redis_url, settings.broker_timeout_s)
    try:
        return read(client)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc
