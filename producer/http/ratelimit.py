"""Request rates counted in Redis, so every app process (uvicorn worker) shares one count."""

from __future__ import annotations

import time

import redis

from producer.client import async_redis_client
from producer.errors import BrokerUnavailable
from producer.names import KEY_PREFIX
from producer.settings import ProducerSettings


class RateLimiter:
    """Requests per second per name, in a fixed one-second window.

    The name is what is limited: a webhook source today; a credential can be one too.
    """

    def __init__(self, settings: ProducerSettings) -> None:
        self._settings = settings

    async def allow(self, name: str, per_s: int) -> bool:
        """Count this request; False once `name` is over `per_s` this second (0: no limit)."""
        if not per_s:
            return True
        key = f"{KEY_PREFIX}:rate:{name}:{int(time.time())}"
        r = async_redis_client(self._settings.resolved_redis_url, self._settings.broker_timeout_s)
        try:
            pipe = r.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 2)  # a window's key outlives its second, then Redis drops it
            count = int((await pipe.execute())[0])
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc
        return count <= per_s
