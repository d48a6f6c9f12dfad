"""The callback client's connections: to checked addresses only (docs/security.md, "Callbacks").

An httpcore network backend resolves the host when it connects, refuses the connection when any
address is not allowed (`producer.callbacks`), and connects to the address it checked, so a name
that answered a public address at intake and a loopback one now (DNS rebinding) is refused, and
no second lookup can swap the address between the check and the connection. TLS (SNI,
certificate) and the Host header keep the URL's name. The pool is httpcore's own, below httpx:
no redirects are followed, no proxy from the environment connects in our place, and no client
logs the URL with its query.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from functools import lru_cache

import httpcore
import httpx

from producer.callbacks import Allow, check_addresses, resolve
from producer.settings import get_settings as producer_settings

#: What a failed connection or exchange raises (a refused address raises `CallbackRefused`).
TRANSPORT_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)


class CheckedBackend(httpcore.SyncBackend):
    """Connects only to addresses `allow()` lets through (`producer.callbacks.check_addresses`
    raises `CallbackRefused` otherwise, which no retry will change)."""

    def __init__(self, allow: Callable[[], Allow]) -> None:
        self._allow = allow

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        check_addresses(f"http://{host}:{port}/", host, addresses, self._allow())
        failure: Exception = httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:  # each was checked; the first that answers is used
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure


@lru_cache
def callback_pool() -> httpcore.ConnectionPool:
    """One pool per worker process for callbacks (thread-safe), connecting through
    `CheckedBackend` with the allow-list as it is when each connection is made."""
    return httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=CheckedBackend(lambda: producer_settings().callback_allowlist),
    )
