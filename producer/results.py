"""Reading results back: the result store is a Redis string per ticket (JSON `TriageResult`)."""

from __future__ import annotations

import redis

from producer.client import redis_client
from producer.errors import BrokerUnavailable
from producer.names import result_key
from producer.schemas import TriageResult
from producer.settings import ProducerSettings, get_settings


def get_result(
    ticket_id: str,
    source: str = "api",
    task: str = "category",
    *,
    settings: ProducerSettings | None = None,
) -> TriageResult | None:
    """The ticket's latest result, or None while it is not decided yet."""
    settings = settings or get_settings()
    client = redis_client(settings.resolved_redis_url, settings.broker_timeout_s)
    try:
        raw = client.get(result_key(task, source, ticket_id))
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc
    return None if raw is None else TriageResult.model_validate_json(raw)
