"""Waiting between tries, for every retry loop of our own: exponential backoff with jitter, a
peer's ``Retry-After`` honoured, and `wait_out` for a blip that must be waited out, not given up on.

Celery's own retries (`worker.retrying.retry_later`) and the HTTP clients' waits use the same
`backoff_s`, so one rule spaces every retry in the service.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def backoff_s(
    attempt: int, *, base_s: float, cap_s: float, retry_after_s: float | None = None
) -> float:
    """Seconds to wait after failed try number `attempt` (0-based).

    Equal jitter (half the ceiling fixed, half random) keeps waits growing while spreading out
    the callers that failed together; a peer's Retry-After wins when it asks for longer, up to
    `cap_s`.
    """
    ceiling = min(base_s * 2.0 ** min(attempt, 62), cap_s)
    wait = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after_s is not None:
        wait = max(wait, min(retry_after_s, cap_s))
    return wait


def wait_out(
    call: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...],
    for_s: float,
    what: str,
    base_s: float = 0.25,
    cap_s: float = 2.0,
) -> T:
    """`call()`, tried again with backoff while it raises one of `retry_on`, for up to `for_s`
    seconds; then its error is raised. `what` names the wait in the one warning it logs."""
    deadline = time.monotonic() + for_s
    attempt = 0
    while True:
        try:
            return call()
        except retry_on:
            wait = backoff_s(attempt, base_s=base_s, cap_s=cap_s)
            if time.monotonic() + wait > deadline:
                raise
            if attempt == 0:
                log.warning("%s: waiting up to %.0f s for it to come back", what, for_s)
            time.sleep(wait)
            attempt += 1


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
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
