"""What the routes share within one app (settings, metrics, the rate limiter, the feedback file),
kept on `app.state` and handed to routes as the `ServicesDep` dependency.

Per app, not per process: tests build several apps in one process and each keeps its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, FastAPI, Request

from producer.client import redis_client
from producer.http.feedback_log import FeedbackLog
from producer.http.metrics import Metrics
from producer.http.ratelimit import RateLimiter
from producer.http.settings import HttpSettings
from producer.settings import ProducerSettings


@dataclass(frozen=True)
class Services:
    http: HttpSettings
    producer: ProducerSettings
    metrics: Metrics
    limiter: RateLimiter
    feedback: FeedbackLog

    @classmethod
    def build(cls, hs: HttpSettings, ps: ProducerSettings) -> Services:
        # The metrics read queue depths at scrape time through the producer's pooled client.
        metrics = Metrics(lambda: redis_client(ps.resolved_redis_url, ps.broker_timeout_s))
        return cls(hs, ps, metrics, RateLimiter(ps), FeedbackLog(hs.feedback_path))

    def attach(self, app: FastAPI) -> None:
        app.state.services = self


def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]
