"""What the routes share within one app (settings, the API's credentials, the label sets,
metrics, the rate limiter), kept on `app.state` and handed to routes as `ServicesDep`.

Per app, not per process: tests build several apps in one process and each keeps its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import Depends, FastAPI, Request

from producer.client import redis_client
from producer.http.credentials import Credential, credentials
from producer.http.metrics import Metrics
from producer.http.ratelimit import RateLimiter
from producer.http.review.handle import LedgerHandle
from producer.http.settings import SOURCES, HttpSettings
from producer.labelset import LabelSet
from producer.settings import ProducerSettings


@dataclass(frozen=True)
class Services:
    http: HttpSettings
    producer: ProducerSettings
    metrics: Metrics
    limiter: RateLimiter
    #: Each API token (bytes, to compare) and the credential it proves.
    tokens: tuple[tuple[bytes, Credential], ...]
    #: The label set of each configured task (`TRIAGE_LABELS`), which feedback must keep to.
    labels: dict[str, LabelSet]
    #: The ledger, opened when the review desk first needs it (`TRIAGE_DATABASE_URL`).
    ledger: LedgerHandle = field(default_factory=LedgerHandle)

    @classmethod
    def build(cls, hs: HttpSettings, ps: ProducerSettings) -> Services:
        """Everything read now, so a missing label set stops the start-up, not a request."""
        tokens = tuple(credentials(hs))
        # The metrics read queue depths at scrape time through the producer's pooled client.
        metrics = Metrics(
            lambda: redis_client(ps.resolved_redis_url, ps.broker_timeout_s),
            sources=_configured_sources(hs, [c for _, c in tokens]),
        )
        labels = {task: LabelSet.load(path) for task, path in hs.labels.items()}
        return cls(hs, ps, metrics, RateLimiter(ps), tokens, labels)

    def attach(self, app: FastAPI) -> None:
        app.state.services = self


def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


def _configured_sources(hs: HttpSettings, callers: list[Credential]) -> set[str]:
    """The sources named anywhere in the configuration: the only ones metrics label apart."""
    named = {"api", *SOURCES}
    for caller in callers:
        named |= caller.enqueue | caller.read | caller.feedback | caller.review
    for keys in hs.webhook_secrets.values():
        named |= {s for key in keys for s in key.sources}
    return named - {"*"}
