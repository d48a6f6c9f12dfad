"""The three tasks. Thin: validate the payload, call `models`, route on, choose retry or failure.

classify  (batched)  first pass over many tickets ──confident──► writeback
                                                   └─unsure────► escalate ──► writeback
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from celery import Task
from celery_batches import SimpleRequest

from models.cascade import FirstPass, give_up
from models.cascade import escalate as escalate_one
from models.settings import get_settings as model_settings
from producer.errors import BrokerUnavailable, InvalidTicket, PermanentError
from producer.names import CLASSIFY_TASK, ESCALATE_TASK, WRITEBACK_TASK
from producer.schemas import Ticket, TriageResult
from worker import pipeline, resources
from worker.app import app
from worker.redelivery import RedeliveringBatches
from worker.retry import retry_later
from worker.settings import get_settings, soft_limit_s
from worker.sinks import dead_letter, write_back

log = logging.getLogger(__name__)
_ws = get_settings()


@app.task(
    base=RedeliveringBatches,
    name=CLASSIFY_TASK,
    flush_every=_ws.classify_batch,
    flush_interval=_ws.classify_flush_ms / 1000.0,
    acks_late=True,
    # No soft limit: a batch has nothing to clean up, and the exception would look like a
    # model crash. Past the hard limit the child is killed and the batch sent again.
    time_limit=_ws.classify_time_limit_s,
)
def classify(requests: list[SimpleRequest]) -> list[str]:
    # The batch is acked when this returns, except the ids returned: so nothing may escape;
    # every ticket is routed on, re-sent for a retry, dead-lettered, or (Redis unreachable
    # past the publish retries) returned to be delivered again (`worker.redelivery`).
    unfinished: list[str] = []
    by_task: dict[str, list[tuple[Ticket, dict[str, Any]]]] = defaultdict(list)
    ids: dict[str, list[str]] = defaultdict(list)
    for req in requests:
        kwargs = req.kwargs if isinstance(req.kwargs, dict) else {}
        try:
            ticket = Ticket.parse(kwargs.get("ticket"))
        except InvalidTicket as exc:
            try:
                dead_letter(CLASSIFY_TASK, kwargs, str(exc))
            except BrokerUnavailable:
                unfinished.append(req.id)
            continue
        by_task[ticket.task].append((ticket, kwargs))
        ids[ticket.task].append(req.id)
    for task, items in by_task.items():
        try:
            for first, kwargs in pipeline.first_pass_isolating(task, items):
                enqueued_at = kwargs.get("enqueued_at")
                if first.needs_escalation:
                    escalate.apply_async(
                        kwargs={"first": first.model_dump(mode="json"), "enqueued_at": enqueued_at}
                    )
                else:
                    result = first.result(enqueued_at=enqueued_at)
                    _send_writeback(first.ticket, result, first.vector)
        except Exception:  # the broker is gone: the write-back dedupes what was already sent
            log.exception("could not route %d %s tickets on; they come back", len(items), task)
            unfinished.extend(ids[task])
    return unfinished


@app.task(
    bind=True,
    name=ESCALATE_TASK,
    acks_late=True,
    max_retries=_ws.max_retries,
    soft_time_limit=soft_limit_s(_ws.escalate_time_limit_s),
    time_limit=_ws.escalate_time_limit_s,
)
def escalate(self: Task, first: dict[str, Any], enqueued_at: str | None = None) -> None:
    try:
        fp = FirstPass.model_validate(first)
    except ValueError as exc:
        dead_letter(ESCALATE_TASK, first, f"invalid escalation payload: {exc}")
        return
    labels = resources.labels(fp.ticket.task)
    try:
        result = escalate_one(
            fp,
            labels=labels,
            frontier=resources.frontier(),
            budget=resources.budget(),
            policy=resources.policy(fp.ticket.task),
            max_examples=model_settings().frontier_examples,
            enqueued_at=enqueued_at,
        )
    except Exception as exc:  # retryable, or a failure nobody foresaw: retry, then a human
        if self.request.retries >= self.max_retries:
            result = give_up(
                fp,
                f"frontier unavailable after {self.request.retries + 1} tries: {exc}",
                enqueued_at=enqueued_at,
            )
        else:
            raise retry_later(self, exc) from exc
    _send_writeback(fp.ticket, result, fp.vector)


@app.task(
    bind=True,
    name=WRITEBACK_TASK,
    acks_late=True,
    max_retries=_ws.sink_max_retries,
    soft_time_limit=soft_limit_s(_ws.writeback_time_limit_s),
    time_limit=_ws.writeback_time_limit_s,
)
def writeback(
    self: Task, ticket: dict[str, Any], result: dict[str, Any], vector: list[float] | None = None
) -> None:
    try:
        t, r = Ticket.parse(ticket), TriageResult.model_validate(result)
    except (InvalidTicket, ValueError) as exc:
        dead_letter(WRITEBACK_TASK, {"ticket": ticket, "result": result}, str(exc))
        return
    try:
        done = write_back(t, r, vector or [])
    except PermanentError as exc:
        dead_letter(WRITEBACK_TASK, {"ticket": ticket, "result": result}, str(exc))
        return
    except Exception as exc:  # retryable, or a failure nobody foresaw: retry, then dead-letter
        if self.request.retries >= self.max_retries:
            dead_letter(
                WRITEBACK_TASK,
                {"ticket": ticket, "result": result},
                f"gave up after {self.request.retries + 1} tries: {exc!r}",
            )
            return
        raise retry_later(self, exc) from exc
    log.info(
        "ticket %s/%s %s label=%s by=%s conf=%.3f latency_ms=%.1f sinks=%s",
        t.source,
        t.id,
        r.status,
        r.label,
        r.decided_by,
        r.confidence,
        r.latency_ms or -1.0,
        done,
    )


def _send_writeback(ticket: Ticket, result: TriageResult, vector: list[float]) -> None:
    writeback.apply_async(
        kwargs={
            "ticket": ticket.model_dump(mode="json"),
            "result": result.model_dump(mode="json"),
            "vector": vector,
        }
    )
