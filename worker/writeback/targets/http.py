"""One HTTP call to a ticket system, with its failures mapped onto our error hierarchy.

429, 5xx, timeouts and GitHub's exhausted rate limit (403 with no requests left) are retryable,
with the peer's Retry-After as a hint; any other 4xx is permanent.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import httpx

from producer.backoff import parse_retry_after
from producer.errors import SinkRejected, SinkUnavailable


def call(
    method: str,
    url: str,
    *,
    what: str,
    timeout_s: float,
    retryable: frozenset[int] = frozenset(),
    **kwargs: Any,
) -> httpx.Response:
    """Send the request; return the response when 2xx, raise `SinkUnavailable`/`SinkRejected`.

    `retryable` adds statuses that mean "try again" for this call (Zendesk's 409 conflict).
    """
    try:
        response = client().request(method, url, timeout=timeout_s, **kwargs)
    except httpx.HTTPError as exc:
        raise SinkUnavailable(f"{what}: {method} {url} failed: {exc!r}") from exc
    status = response.status_code
    if status == 429 or status >= 500 or status in retryable or _rate_limited(response):
        raise SinkUnavailable(
            f"{what}: {method} {url} answered {status}", retry_after_s=retry_after(response)
        )
    if status >= 400:
        raise SinkRejected(f"{what}: {method} {url} refused with {status}: {response.text[:200]}")
    return response


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (GitHub's x-ratelimit-reset when that is all there is)."""
    if (seconds := parse_retry_after(response.headers.get("Retry-After"))) is not None:
        return seconds
    try:
        return max(0.0, float(response.headers.get("x-ratelimit-reset", "")) - time.time())
    except ValueError:
        return None


@lru_cache
def client() -> httpx.Client:
    """One pooled client per worker process (thread-safe); redirects are not followed."""
    return httpx.Client(follow_redirects=False)


def _rate_limited(response: httpx.Response) -> bool:
    return response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0"
