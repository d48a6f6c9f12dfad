"""The HTTP app behind `triage serve`: our ticket API, the webhooks, results, feedback, health.

Every accepted ticket is in Redis before the 202; when Redis is down the answer is 503 with
Retry-After and nothing is half-done (the delivery id is claimed in the same atomic step as the
enqueue).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import redis
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from producer import wire
from producer.client import asend_tickets, async_redis_client, redis_client, send_writeback
from producer.errors import BrokerUnavailable, InvalidTicket, QueueFull, SignatureInvalid
from producer.http import payloads, verify
from producer.http.metrics import Metrics, MetricsMiddleware
from producer.http.settings import HttpSettings
from producer.http.settings import get_settings as http_settings
from producer.names import KEY_PREFIX
from producer.results import get_result
from producer.schemas import Name, StageTrace, Ticket, TriageResult
from producer.settings import ProducerSettings
from producer.settings import get_settings as producer_settings

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
_bearer = HTTPBearer(auto_error=False)


class Accepted(BaseModel):
    id: str
    source: str
    duplicate: bool = Field(description="this revision was enqueued before; not sent again")


class Feedback(BaseModel):
    """A human's label for a ticket; the text is needed to index it and to train on it."""

    label: str = Field(min_length=1, max_length=128)
    task: Name = "category"
    subject: str = ""
    body: str = ""
    note: str | None = Field(default=None, max_length=1000)


class TooLarge(Exception):
    pass


def create_app(
    settings: HttpSettings | None = None, producer: ProducerSettings | None = None
) -> FastAPI:
    """Build the app; settings are read (and validated) now, so a bad one stops the start."""
    hs = settings or http_settings()
    ps = producer or producer_settings()
    metrics = Metrics(lambda: redis_client(ps.resolved_redis_url, ps.broker_timeout_s))
    feedback_lock = threading.Lock()
    app = FastAPI(title="ticket-triage", version="1")
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    def require_token(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if "api" in hs.insecure_sources:
            return
        given = (creds.credentials if creds else "").encode()
        if not sum(
            hmac.compare_digest(t.get_secret_value().encode(), given) for t in hs.api_tokens
        ):
            raise SignatureInvalid("missing or unknown bearer token")

    Auth = Depends(require_token)

    @app.exception_handler(SignatureInvalid)
    async def _unauthorized(_: Request, exc: SignatureInvalid) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=401)

    @app.exception_handler(InvalidTicket)
    async def _invalid(_: Request, exc: InvalidTicket) -> JSONResponse:
        return JSONResponse({"detail": exc.errors or str(exc)}, status_code=422)

    @app.exception_handler(QueueFull)
    async def _queue_full(_: Request, exc: QueueFull) -> JSONResponse:
        # Back-pressure: the sender keeps the ticket and retries later; Redis does not grow.
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
        )

    @app.exception_handler(BrokerUnavailable)
    async def _unavailable(_: Request, exc: BrokerUnavailable) -> JSONResponse:
        log.warning("answering 503: %s", exc)
        return JSONResponse(
            {"detail": "the broker is unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(TooLarge)
    async def _too_large(_: Request, exc: TooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.post(
        "/v1/tickets",
        status_code=202,
        dependencies=[Auth],
        openapi_extra=_json_body({"anyOf": [_ticket_schema(), {"type": "array"}]}),
    )
    async def post_tickets(request: Request) -> list[Accepted]:
        """Enqueue our own `Ticket` JSON, one or a list; all or nothing (422 names the field)."""
        data = _json(await _read_capped(request, hs.max_body_bytes))
        items = data if isinstance(data, list) else [data]
        tickets = []
        for n, item in enumerate(items):
            try:
                tickets.append(Ticket.parse(item))
            except InvalidTicket as exc:
                where = f"[{n}]." if isinstance(data, list) else ""
                errors = [{**e, "field": where + e["field"]} for e in exc.errors]
                raise InvalidTicket(str(exc), errors) from exc
        sent = await asend_tickets(tickets, settings=ps)
        for t, ok in zip(tickets, sent, strict=True):
            metrics.tickets.labels(t.source, "enqueued" if ok else "duplicate").inc()
        return [
            Accepted(id=t.id, source=t.source, duplicate=not ok)
            for t, ok in zip(tickets, sent, strict=True)
        ]

    @app.post("/v1/webhooks/{source}", status_code=202, response_model=None)
    async def webhook(source: str, request: Request) -> Accepted | JSONResponse:
        """A ticket system's webhook: verified, deduplicated, mapped to a `Ticket`, enqueued."""
        if source not in hs.webhook_sources:
            return JSONResponse({"detail": f"unknown webhook source {source!r}"}, 404)
        if hs.webhook_rate_per_s and not await _within_rate(source):
            return JSONResponse({"detail": "rate limited"}, 429, headers={"Retry-After": "1"})
        body = await _read_capped(request, hs.max_body_bytes)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if source not in hs.insecure_sources:
            stamp = verify.VERIFIERS[source](headers, body, hs.secrets(source))
            if stamp is not None and abs(time.time() - stamp) > hs.signature_tolerance_s:
                raise SignatureInvalid("the signed timestamp is outside the tolerance window")
        delivery = headers.get(verify.DELIVERY_HEADERS[source])
        if delivery is None and source == "generic":
            delivery = headers.get("x-triage-signature")
        return await _accept(source, delivery, headers, body)

    async def _accept(
        source: str, delivery: str | None, headers: dict[str, str], body: bytes
    ) -> Accepted | JSONResponse:
        # The payload is read before the delivery id is claimed, so the claim and the enqueue
        # are one atomic step in Redis (one round trip): a 422 or a 503 leaves the delivery
        # unclaimed, and the sender's retry is taken rather than dropped as a replay.
        ticket = payloads.ADAPTERS[source](_json(body), headers)
        if ticket is None:
            return JSONResponse({"detail": "event ignored"}, 200)
        gate = (
            wire.Gate(f"{KEY_PREFIX}:delivery:{source}:{delivery}", hs.delivery_ttl_s)
            if delivery
            else None
        )
        try:
            sent = (await asend_tickets([ticket], settings=ps, gate=gate))[0]
        except wire.GateClosed:
            metrics.tickets.labels(source, "replayed").inc()
            return JSONResponse({"detail": "delivery already received"}, 200)
        metrics.tickets.labels(source, "enqueued" if sent else "duplicate").inc()
        return Accepted(id=ticket.id, source=ticket.source, duplicate=not sent)

    async def _within_rate(source: str) -> bool:
        # A fixed one-second window in Redis, shared by every app process.
        key = f"{KEY_PREFIX}:rate:{source}:{int(time.time())}"
        r = async_redis_client(ps.resolved_redis_url, ps.broker_timeout_s)
        try:
            pipe = r.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 2)
            count = int((await pipe.execute())[0])
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc
        return count <= hs.webhook_rate_per_s

    # `:path`: ids may hold slashes (GitHub's are "<owner>/<repo>#<number>", sent as %23).
    @app.get("/v1/tickets/{source}/{ticket_id:path}", dependencies=[Auth])
    async def ticket_result(source: str, ticket_id: str, task: str = "category") -> TriageResult:
        """The ticket's latest `TriageResult`; 404 until it is decided."""
        found = await asyncio.to_thread(get_result, ticket_id, source, task, settings=ps)
        if found is None:
            return JSONResponse({"detail": "no result yet"}, 404)  # type: ignore[return-value]
        return found

    @app.post(
        "/v1/tickets/{source}/{ticket_id:path}/feedback", status_code=202, dependencies=[Auth]
    )
    async def feedback(source: str, ticket_id: str, given: Feedback) -> TriageResult:
        """Record a human label: it becomes the stored label, enters the index as
        human-confirmed and is appended to the training file."""
        revision = f"human-{uuid.uuid4().hex[:12]}"  # each correction is written back anew
        ticket = Ticket.parse(
            {
                "id": ticket_id,
                "source": source,
                "subject": given.subject,
                "body": given.body,
                "task": given.task,
                "revision": revision,
            }
        )
        result = TriageResult(
            ticket_id=ticket.id,
            source=ticket.source,
            task=ticket.task,
            revision=revision,
            label=given.label,
            confidence=1.0,
            decided_by="human",
            status="labelled",
            reason=given.note or "human feedback",
            trace=[StageTrace(stage="human", label=given.label, confidence=1.0, latency_ms=0.0)],
        )
        await asyncio.to_thread(send_writeback, ticket, result, settings=ps)
        line = json.dumps(
            {
                "ticket_id": ticket.id,
                "source": ticket.source,
                "task": ticket.task,
                "text": ticket.text,
                "label": given.label,
                "note": given.note,
                "at": datetime.now(UTC).isoformat(),
            }
        )
        with feedback_lock:
            hs.feedback_path.parent.mkdir(parents=True, exist_ok=True)
            with hs.feedback_path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        return result

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 when the broker (and a Qdrant server, when configured) answers, else 503."""
        checks = await asyncio.to_thread(_health, ps, hs)
        ok = all(v in {"ok", "local"} for v in checks.values())
        return JSONResponse(checks, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        # Off the event loop: the scrape reads queue depths from Redis, which may be slow.
        body = await asyncio.to_thread(metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4")

    return app


async def _read_capped(request: Request, cap: int) -> bytes:
    """The raw body, refused (413) as soon as it passes `cap`, before it is all read."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise TooLarge(f"body of {length} bytes is over the {cap}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise TooLarge(f"body is over the {cap}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidTicket("body is not UTF-8", [{"field": "body", "error": "not UTF-8"}]) from exc
    except json.JSONDecodeError as exc:
        raise InvalidTicket(
            f"body is not JSON: {exc}", [{"field": "body", "error": f"not JSON: {exc.msg}"}]
        ) from exc
    except RecursionError as exc:  # "[[[[..." of a few kB exhausts the parser's stack
        raise InvalidTicket(
            "body is nested too deeply", [{"field": "body", "error": "nested too deeply"}]
        ) from exc


def _health(ps: ProducerSettings, hs: HttpSettings) -> dict[str, str]:
    checks = {"broker": "ok", "index": "local"}
    try:
        redis_client(ps.resolved_redis_url, ps.broker_timeout_s).ping()
    except redis.RedisError as exc:
        checks["broker"] = f"unreachable: {exc}"
    if hs.qdrant_url:
        try:
            response = httpx.get(hs.qdrant_url.rstrip("/") + "/readyz", timeout=2.0)
            checks["index"] = (
                "ok" if response.status_code == 200 else f"http {response.status_code}"
            )
        except httpx.HTTPError as exc:
            checks["index"] = f"unreachable: {exc!r}"
    return checks


def _ticket_schema() -> dict[str, Any]:
    return Ticket.model_json_schema()


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
