"""The HTTP app behind `triage serve`: our ticket API, the webhooks, results, feedback, health.

Every accepted ticket is in Redis before the 202; when Redis is down the answer is 503 with
Retry-After and nothing is half-done (the delivery id is claimed in the same atomic step as the
enqueue).

Where things are: the routes in `routes/` (one router per concern), what they share in
`state.Services`, the API-token check in `auth`, every error's answer in `errors`.
"""

from __future__ import annotations

from fastapi import FastAPI

from producer.http.errors import install_handlers
from producer.http.metrics import MetricsMiddleware
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
    services = Services.build(settings or http_settings(), producer or producer_settings())
    app = FastAPI(title="ticket-triage", version="1")
    services.attach(app)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    for router in ROUTERS:
        app.include_router(router)
    install_handlers(app)
    return app
