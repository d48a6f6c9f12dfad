"""Retry timing: exponential backoff with full jitter, honouring a peer's Retry-After."""

from __future__ import annotations

import random
from typing import Any

from celery.exceptions import Reject

from producer.errors import RetryableError
from worker.settings import get_settings


def backoff_s(retries: int, exc: Exception | None = None) -> float:
    """Seconds before try number `retries + 2` (at least what a peer's Retry-After asked)."""
    s = get_settings()
    ceiling = min(s.retry_backoff_max_s, s.retry_backoff_s * (2**retries))
    wait = random.uniform(s.retry_backoff_s / 2, ceiling)  # jitter spreads a thundering herd
    if isinstance(exc, RetryableError) and exc.retry_after_s is not None:
        wait = max(wait, min(exc.retry_after_s, s.retry_backoff_max_s))
    return wait


def retry_later(task: Any, exc: Exception) -> Exception:
    """The exception a bound task raises to run again after `backoff_s`.

    Celery publishes the retry, then acks the running message. When the publish fails (Redis
    unreachable past the publish retries) Celery drops the message (`Reject(requeue=False)`);
    we give it back instead, so the ticket is delivered again rather than lost.
    """
    try:
        retry: Exception = task.retry(
            exc=exc, countdown=backoff_s(task.request.retries, exc), throw=False
        )
    except Reject as rejected:
        retry = Reject(rejected.reason, requeue=True)
    return retry
