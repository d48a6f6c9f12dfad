"""How the HTTP app answers the service's errors: each one mapped to its status code here, once.

Routes raise (`producer.errors`, the edge's own `TooLarge`, `Forbidden` and `ClientGone`, or
FastAPI's `HTTPException` for a plain 404/429); they never build an error response themselves.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from producer.errors import BrokerUnavailable, InvalidTicket, QueueFull, SignatureInvalid

log = logging.getLogger(__name__)

#: Seconds a sender is told to wait (Retry-After) when Redis did not take its ticket.
RETRY_AFTER_S = 5


class TooLarge(Exception):
    """A request body over `TRIAGE_MAX_BODY_BYTES`: 413."""


class Forbidden(Exception):
    """A verified caller without the right for what it asked (a scope, a source, an origin): 403."""


class ClientGone(Exception):
    """The client went away before its body was in. Nobody is left to answer; the server's
    protocol (`producer.http.server`) logs the one line, so the app only unwinds."""


def install_handlers(app: FastAPI) -> None:
    """Register every handler of the app. `QueueFull` is a `BrokerUnavailable`; the most specific
    handler wins, so a full queue keeps its own message."""
    app.exception_handler(SignatureInvalid)(_unauthorized)
    app.exception_handler(InvalidTicket)(_invalid)
    app.exception_handler(QueueFull)(_queue_full)
    app.exception_handler(BrokerUnavailable)(_unavailable)
    app.exception_handler(TooLarge)(_too_large)
    app.exception_handler(Forbidden)(_forbidden)
    app.exception_handler(ClientGone)(_gone)


async def _unauthorized(_: Request, exc: SignatureInvalid) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=401)


async def _invalid(_: Request, exc: InvalidTicket) -> JSONResponse:
    return JSONResponse({"detail": exc.errors or str(exc)}, status_code=422)


async def _queue_full(_: Request, exc: QueueFull) -> JSONResponse:
    # Back-pressure: the sender keeps the ticket and retries later; Redis does not grow.
    return JSONResponse(
        {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


async def _unavailable(_: Request, exc: BrokerUnavailable) -> JSONResponse:
    # The cause stays in our log; the sender only needs to know to come back.
    log.warning("answering 503: %s", exc)
    return JSONResponse(
        {"detail": "the broker is unavailable; retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _too_large(_: Request, exc: TooLarge) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=413)


async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=403)


async def _gone(_: Request, exc: ClientGone) -> JSONResponse:
    # 499 (nginx's "client closed request"): only the metrics see it, the client has left.
    return JSONResponse({"detail": "client closed the request"}, status_code=499)
