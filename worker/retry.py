"""Retry timing: exponential backoff with full jitter, honouring a peer's Retry-After."""

from __future__ import annotations

import random

from producer.errors import RetryableError
from worker.settings import get_settings


def backoff_s(retries: int, exc: RetryableError | None = None) -> float:
    """Seconds before try number `retries + 2`."""
    s = get_settings()
    ceiling = min(s.retry_backoff_max_s, s.retry_backoff_s * (2**retries))
    wait = random.uniform(s.retry_backoff_s / 2, ceiling)  # jitter spreads a thundering herd
    if exc is not None and exc.retry_after_s is not None:
        wait = max(wait, min(exc.retry_after_s, s.retry_backoff_max_s))
    return wait
