"""Operational routes: `/healthz`, open to probes, and `/metrics`, which needs an API token
unless `TRIAGE_METRICS_PUBLIC` (its figures tell an outsider how busy and how behind we are)."""

from __future__ import annotations

import asyncio

import httpx
import redis
from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from producer.client import redis_client
from producer.http.auth import scraper
from producer.http.state import Services, ServicesDep

router = APIRouter()


@router.get("/healthz")
async def healthz(services: ServicesDep) -> JSONResponse:
    """200 when the broker (and a Qdrant server, when configured) answers, else 503."""
    checks = await asyncio.to_thread(_health, services)
    ok = all(v in {"ok", "local"} for v in checks.values())
    return JSONResponse(checks, status_code=200 if ok else 503)


@router.get("/metrics", dependencies=[Depends(scraper)])
async def prometheus(services: ServicesDep) -> Response:
    # Off the event loop: the scrape reads queue depths from Redis, which may be slow.
    body = await asyncio.to_thread(services.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4")


def _health(services: Services) -> dict[str, str]:
    ps, qdrant_url = services.producer, services.http.qdrant_url
    checks = {"broker": "ok", "index": "local"}
    try:
        redis_client(ps.resolved_redis_url, ps.broker_timeout_s).ping()
    except redis.RedisError as exc:
        checks["broker"] = f"unreachable: {exc}"
    if qdrant_url:
        try:
            response = httpx.get(qdrant_url.rstrip("/") + "/readyz", timeout=2.0)
            checks["index"] = (
                "ok" if response.status_code == 200 else f"http {response.status_code}"
            )
        except httpx.HTTPError as exc:
            checks["index"] = f"unreachable: {exc!r}"
    return checks
