"""The server side of the HTTP edge: uvicorn's h11 protocol with the read timeouts it lacks.

uvicorn times out idle kept-alive connections, but not a request in progress: a client that
sends half its headers, or a body one byte a minute, holds a connection for ever (300 such
clients held 300). `TimedH11Protocol` gives the headers `TRIAGE_HTTP_HEADER_TIMEOUT_S` from
the first byte and the body `TRIAGE_HTTP_BODY_TIMEOUT_S` from the end of the headers, then
answers 408 (when no answer has started) and closes, with one log line. A client that goes away
mid-body is one log line too; the app only unwinds (`errors.ClientGone`), with no traceback.

`triage serve` runs it (``uvicorn.run(..., http=TimedH11Protocol)``) with
``limit_concurrency=TRIAGE_HTTP_MAX_CONNECTIONS``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from producer.http.settings import get_settings

Waiting = Literal["headers", "body"]

_TIMEOUT_BODY = b"request not received in time\n"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with header and body read timeouts. The timeouts come from
    `HttpSettings` unless a subclass sets them (tests do)."""

    header_timeout_s: float | None = None
    body_timeout_s: float | None = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if self.header_timeout_s is None or self.body_timeout_s is None:
            hs = get_settings()
            self.limits: dict[Waiting, float] = {
                "headers": self.header_timeout_s or hs.http_header_timeout_s,
                "body": self.body_timeout_s or hs.http_body_timeout_s,
            }
        else:
            self.limits = {"headers": self.header_timeout_s, "body": self.body_timeout_s}
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: Waiting | None = None
        self._cut_off = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for("headers")

    def data_received(self, data: bytes) -> None:
        if self._waiting is None and self.conn.their_state is h11.IDLE:
            self._wait_for("headers")  # the first byte of a request on a kept-alive connection
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._cut_off and self.conn.their_state is h11.SEND_BODY:
            self.logger.info("%s went away before its request body was in", self._peer())
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Arm or disarm the timer for where the client's request now stands."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._waiting != "body":
                self._wait_for("body")
        elif state is not h11.IDLE or self._waiting != "headers":
            # The request is in (or the connection is idle between requests, which uvicorn's
            # keep-alive timeout watches).
            self._disarm()

    def _wait_for(self, what: Waiting) -> None:
        self._disarm()
        self._waiting = what
        self._timer = self.loop.call_later(self.limits[what], self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._waiting = None, None

    def _expire(self) -> None:
        what, self._timer = self._waiting, None
        if what is None or self.transport.is_closing():
            return
        self._cut_off = True
        self.logger.info(
            "%s closed: request %s not in within %gs", self._peer(), what, self.limits[what]
        )
        cycle = self.cycle if what == "body" else None
        if cycle is None or not cycle.response_started:
            self.transport.write(_TIMEOUT_RESPONSE)
        if cycle is not None:
            # The app, if still at work, now reads a disconnect and its answer goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
