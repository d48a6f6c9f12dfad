"""Celery-level retries of our tasks: when the next try runs, and retrying without losing the
message when the retry itself cannot be published."""

from __future__ import annotations

from typing import Any

from celery.exceptions import Reject

from producer.backoff import backoff_s as backoff
from producer.errors import RetryableError
from worker.settings import get_settings


def backoff_s(retries: int, exc: BaseException | None = None) -> float:
    """Seconds before try number `retries + 2` (at least what a peer's Retry-After asked)."""
    s = get_settings()
    hint = exc.retry_after_s if isinstance(exc, RetryableError) else None
    return backoff(
        retries, base_s=s.retry_backoff_s, cap_s=s.retry_backoff_max_s, retry_after_s=hint
    )


def retry_later(task: Any, exc: BaseException, **options: Any) -> Exception:
    """The exception a bound task raises to run again after `backoff_s` (`options` go to
    `Task.retry`, e.g. other kwargs for the next try).

    Celery publishes the retry, then acks the running message. When the publish fails (Redis
    unreachable past the publish retries) Celery drops the message (`Reject(requeue=False)`);
    we give it back instead, so the ticket is delivered again rather than lost.
    """
    try:
        retry: Exception = task.retry(
            exc=exc, countdown=backoff_s(task.request.retries, exc), throw=False, **options
        )
    except Reject as rejected:
        retry = Reject(rejected.reason, requeue=True)
    return retry
