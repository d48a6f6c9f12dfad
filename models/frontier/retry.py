"""When to retry a frontier call and how long to wait: exponential backoff with jitter.

A peer's ``Retry-After`` wins over our backoff when it asks for longer. A wait longer than
`MAX_INLINE_WAIT_S` is not slept in a worker thread: the call fails at once with the hint, so the
task queue can defer the ticket instead of holding a thread.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Longest wait slept inside one call; beyond it the caller is told to come back later.
MAX_INLINE_WAIT_S = 30.0
#: 408 and 429 are the 4xx that mean "try again"; every 5xx does (529 is Anthropic's overload).
RETRYABLE_4XX = frozenset({408, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_4XX or status >= 500


def backoff_s(attempt: int, base_s: float, retry_after_s: float | None = None) -> float:
    """Seconds to wait after failed try number `attempt` (0-based).

    Equal jitter (half fixed, half random) keeps waits growing while spreading out the threads
    that were rate-limited together.
    """
    ceiling = min(base_s * 2.0**attempt, MAX_INLINE_WAIT_S)
    wait = ceiling / 2 + random.uniform(0, ceiling / 2)
    return max(wait, retry_after_s or 0.0)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (it may be seconds or an HTTP date); None if absent or garbled."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
