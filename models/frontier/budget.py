"""The daily frontier spend cap, shared by every worker through one Redis counter per UTC day.

`check()` before a call and `record()` after it is not atomic: with N calls in flight the cap can
be passed by at most N calls' cost. That bound is small and known (the concurrency cap), and a
reservation scheme would need the cost before the call, which only the answer tells.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import redis

from producer.errors import BrokerUnavailable, BudgetExceeded

KEY_PREFIX = "triage:spend:"
#: Old days stay readable for a while (yesterday's spend in a report), then expire on their own.
KEY_TTL_S = 3 * 24 * 3600


class SpendBudget:
    """Today's frontier spend in US dollars against a cap; a cap of 0 turns the frontier off."""

    def __init__(
        self,
        redis_client: redis.Redis,
        daily_usd: float,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._redis = redis_client
        self.daily_usd = daily_usd
        self._clock = clock

    def check(self) -> None:
        """Raise `BudgetExceeded` when today's spend has reached the cap."""
        spent = self.spent_today()
        if spent >= self.daily_usd:
            raise BudgetExceeded(
                f"frontier spend today is ${spent:.4f}, at or over the daily cap of "
                f"${self.daily_usd:.2f} (TRIAGE_FRONTIER_DAILY_BUDGET_USD)"
            )

    def record(self, cost_usd: float) -> float:
        """Add `cost_usd` to today's spend; returns the new total."""
        key = self.key()
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incrbyfloat(key, cost_usd)
            pipe.expire(key, KEY_TTL_S)
            total, _ = pipe.execute()
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"cannot record frontier spend in Redis: {exc}") from exc
        return float(total)

    def spent_today(self) -> float:
        """Today's spend in US dollars (0 when nothing was spent)."""
        try:
            value = self._redis.get(self.key())
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"cannot read frontier spend from Redis: {exc}") from exc
        return float(value) if value is not None else 0.0

    def key(self) -> str:
        """The Redis key of today's (UTC) counter."""
        return f"{KEY_PREFIX}{self._clock().astimezone(UTC):%Y-%m-%d}"
