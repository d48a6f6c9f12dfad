"""HTTP calls of the write-back targets, with their failures mapped onto our error hierarchy.

A ticket system is reached through `Api`: every URL is its configured base plus percent-encoded
path segments, and is checked to stay under that base (scheme, host, port, path prefix) before
any request, so no id can climb out of it (``1/../../users/me``).

429, 5xx, timeouts and GitHub's exhausted rate limit (403 with no requests left) are retryable,
with the peer's Retry-After as a hint; any other 4xx is permanent. Errors name the URL without
credentials or query, and never carry the response body.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import httpx

from producer.backoff import parse_retry_after
from producer.errors import SinkRejected, SinkUnavailable

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Api:
    """A ticket system's REST API under `base` (``https://api.github.com``, a Jira with a
    context path): requests go only to URLs under it."""

    base: str
    what: str
    timeout_s: float
    headers: Mapping[str, str] = field(default_factory=dict)

    def url(self, *segments: str) -> str:
        """`base` / each segment percent-encoded (a ``/`` in one stays inside it)."""
        return under(self.base, *segments)

    def call(
        self, method: str, *segments: str, retryable: frozenset[int] = frozenset(), **kwargs: Any
    ) -> httpx.Response:
        """`call` of `method` on the URL of `segments`."""
        return call(
            method,
            self.url(*segments),
            what=self.what,
            timeout_s=self.timeout_s,
            retryable=retryable,
            headers=dict(self.headers),
            **kwargs,
        )

    def json(self, method: str, *segments: str, **kwargs: Any) -> dict[str, Any]:
        """`call`, its answer a JSON object (anything else: `SinkRejected`)."""
        response = self.call(method, *segments, **kwargs)
        try:
            data = response.json()
        except ValueError as exc:
            raise SinkRejected(f"{self.what}: {method} answered with no JSON") from exc
        if not isinstance(data, dict):
            raise SinkRejected(f"{self.what}: {method} answered with no JSON object")
        return data


def under(base: str, *segments: str) -> str:
    """The URL of `segments` under `base`; `SinkRejected` when a segment is empty or a dot
    segment, or the URL (as it would be sent, dot segments resolved) leaves `base`."""
    for segment in segments:
        if segment in {"", ".", ".."}:
            raise SinkRejected(f"path segment {segment!r} is not allowed in a ticket system URL")
    root = _root(base)
    path = "/".join(quote(segment, safe="") for segment in segments)
    try:
        url = httpx.URL(str(root) + path)
    except httpx.InvalidURL as exc:
        raise SinkRejected(f"not a URL under {redact(root)}: {exc}") from exc
    if not inside(url, root):
        raise SinkRejected(f"{redact(url)} is not under the configured API base {redact(root)}")
    return str(url)


def inside(url: httpx.URL, root: httpx.URL) -> bool:
    """Whether `url` has `root`'s scheme, host and port, and a path under `root`'s."""
    return (
        url.scheme == root.scheme
        and url.host == root.host
        and _port(url) == _port(root)
        and not url.userinfo
        and url.raw_path.startswith(root.raw_path)
    )


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
    shown = redact(url)
    try:
        response = client().request(method, url, timeout=timeout_s, **kwargs)
    except httpx.HTTPError as exc:
        raise SinkUnavailable(f"{what}: {method} {shown} failed: {type(exc).__name__}") from exc
    status = response.status_code
    if status == 429 or status >= 500 or status in retryable or _rate_limited(response):
        raise SinkUnavailable(
            f"{what}: {method} {shown} answered {status}", retry_after_s=retry_after(response)
        )
    if status >= 400:
        raise SinkRejected(f"{what}: {method} {shown} refused with {status}")
    return response


def redact(url: httpx.URL | str) -> str:
    """`url` without user name, password, query or fragment: what errors and logs may show."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<not a URL>"
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


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


def _root(base: str) -> httpx.URL:
    """`base` with a path ending in ``/``, so ``/api/v3`` is no prefix of ``/api/v3x``."""
    try:
        root = httpx.URL(base.rstrip("/") + "/")
    except httpx.InvalidURL as exc:
        raise SinkRejected(f"the configured API base is not a URL: {exc}") from exc
    if root.scheme not in _DEFAULT_PORTS or not root.host:
        raise SinkRejected("the configured API base is not an http(s) URL")
    return root


def _port(url: httpx.URL) -> int | None:
    return url.port or _DEFAULT_PORTS.get(url.scheme)


def _rate_limited(response: httpx.Response) -> bool:
    return response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0"
