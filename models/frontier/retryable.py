"""Which frontier failures are worth another try, and whether to wait for it in this thread.

The wait itself is `producer.backoff.backoff_s`, the service's one backoff rule. A peer asking
for longer than `MAX_INLINE_WAIT_S` is not waited for in a worker thread: the call fails at once
with the hint, so the task queue can defer the ticket instead of holding a thread.
"""

from __future__ import annotations

from producer.backoff import backoff_s

#: Longest wait slept inside one call; beyond it the caller is told to come back later.
MAX_INLINE_WAIT_S = 30.0
#: 408 and 429 are the 4xx that mean "try again"; every 5xx does (529 is Anthropic's overload).
RETRYABLE_4XX = frozenset({408, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_4XX or status >= 500


def inline_wait_s(attempt: int, base_s: float, retry_after_s: float | None) -> float | None:
    """Seconds to sleep before the next try, or None when the peer asked for more than we hold
    a thread for."""
    if retry_after_s is not None and retry_after_s > MAX_INLINE_WAIT_S:
        return None
    return backoff_s(attempt, base_s=base_s, cap_s=MAX_INLINE_WAIT_S, retry_after_s=retry_after_s)
