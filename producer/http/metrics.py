"""Prometheus metrics of the HTTP app: requests by route and status, latency, tickets enqueued,
and the queue depths read from Redis at scrape time.

Every label value comes from a bounded set: routes by their template, sources from the
configuration (any other folds into ``other``), so no request can add a series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.queue_stats import QueueCollector


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide.

    Given a way to reach Redis, it also reports the queue depths and dead letters at scrape
    time (`producer.queue_stats`), as every worker does.
    """

    def __init__(
        self, connect: Callable[[], redis.Redis] | None = None, sources: Iterable[str] = ()
    ) -> None:
        self.sources = frozenset(sources)
        self.registry = CollectorRegistry()
        if connect is not None:
            self.registry.register(QueueCollector(connect))
        self.requests = Counter(
            "triage_http_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "triage_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self.tickets = Counter(
            "triage_tickets", "Tickets received", ["source", "outcome"], registry=self.registry
        )

    def ticket(self, source: str, outcome: str) -> None:
        """Count a ticket; a source the configuration does not name is counted as ``other``."""
        self.tickets.labels(source if source in self.sources else "other", outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI (no per-request task), labelled by the route's template, never the raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(name, str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - started)
