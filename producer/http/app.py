"""The HTTP app behind `triage serve`: our ticket API, the webhooks, results, feedback, health.

Every accepted ticket is in Redis before the 202; when Redis is down the answer is 503 with
Retry-After and nothing is half-done (the delivery id is claimed in the same atomic step as the
enqueue).

Where things are: the routes in `routes/` (one router per concern), what they share in
`state.Services`, the API-token check in `auth` (scopes in `credentials`), every error's answer
in `errors`, and the server's timeouts for slow clients in `server` (docs/security.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from producer.client import async_redis_client
from producer.http.errors import install_handlers
from producer.http.metrics import MetricsMiddleware
from producer.http.review import install as install_review_desk
from producer.http.routes import ROUTERS
from producer.http.settings import HttpSettings
from producer.http.settings import get_settings as http_settings
from producer.http.state import Services
from producer.settings import ProducerSettings
from producer.settings import get_settings as producer_settings


def create_app(
    settings: HttpSettings | None = None, producer: ProducerSettings | None = None
) -> FastAPI:
    """Build the app; settings are read (and validated) now, so a bad one stops the start."""
    hs = settings or http_settings()
    services = Services.build(hs, producer or producer_settings())
    # The schema and its pages only when asked for (TRIAGE_HTTP_DOCS): they map the attack surface.
    app = FastAPI(
        title="ticket-triage",
        version="1",
        openapi_url="/openapi.json" if hs.http_docs else None,
        docs_url="/docs" if hs.http_docs else None,
        redoc_url="/redoc" if hs.http_docs else None,
        lifespan=_closing_redis,
    )
    services.attach(app)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    for router in ROUTERS:
        app.include_router(router)
    install_review_desk(app)  # /review: the review desk's pages
    install_handlers(app)
    return app


@asynccontextmanager
async def _closing_redis(app: FastAPI) -> AsyncIterator[None]:
    """On shutdown, close the Redis connections the routes opened on this event loop, and the
    ledger if the review desk opened it."""
    yield
    app.state.services.ledger.close()
    ps: ProducerSettings = app.state.services.producer
    await async_redis_client(ps.resolved_redis_url, ps.broker_timeout_s).aclose()
