"""The three tasks. Thin: validate the payload, call `models`, route on, choose retry or failure.

classify  (batched)  first pass over many tickets ──confident──► writeback_batch ──► writeback
                                                   └─unsure────► escalate ──► writeback
(`writeback_batch` writes a batch's results at once; a ticket that fails goes on alone. A worker
that serves escalate too, with no frontier configured, sends an unsure ticket to human review in
its batch's write-back. A worker that serves writeback too, in a threads or solo pool, writes a
batch's results back itself: `serve_here`.)
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from celery import Task
from celery_batches import SimpleRequest

from models.cascade import NO_FRONTIER, FirstPass, give_up
from models.cascade import escalate as escalate_one
from models.settings import get_settings as model_settings
from models.vectors import unpack
from producer.errors import BrokerUnavailable, InvalidTicket, PermanentError
from producer.names import CLASSIFY_TASK, ESCALATE_TASK, WRITEBACK_BATCH_TASK, WRITEBACK_TASK
from producer.schemas import Ticket, TriageResult
from worker import events_log, pipeline, resources
from worker.app import app
from worker.batch_sinks import Outcome, as_payload, write_back_many
from worker.redelivery import RedeliveringBatches
from worker.retry import backoff_s, retry_later
from worker.settings import get_settings, soft_limit_s
from worker.sinks import dead_letter, write_back

log = logging.getLogger(__name__)
_ws = get_settings()
_serves_escalate = False
_writes_back = False
#: A decided ticket on its way to the write-back: its vector packed or as an array.
Written = tuple[Ticket, TriageResult, str | np.ndarray]


def serve_here(*, escalate: bool, writeback: bool) -> None:
    """`worker.runner`: the queues this process consumes besides classify.

    `writeback` (a threads or solo pool that serves the writeback queue, and
    `TRIAGE_WRITEBACK_INLINE`): a classify batch writes its results back itself, in its own
    thread after its pass, instead of sending them to this same process through Redis: each
    result dumped to JSON, pushed, popped, decoded and validated again, holding the GIL the
    next batch's pass needs (a quarter of the GIL time outside the pass in a profile of the
    `e2e` bench). Not under prefork: a slow callback would count against the classify time
    limit, which kills the child.
    """
    global _serves_escalate, _writes_back
    _serves_escalate, _writes_back = escalate, writeback


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
    # A process that serves escalate too, with no frontier, would only send an unsure ticket to
    # review: do it here, in the batch's write-back, not in an escalate and a writeback task
    # each. A classify-only worker routes on: the escalate workers may hold the frontier key.
    review_now = _serves_escalate and resources.frontier() is None
    for task, items in by_task.items():
        try:
            decided: list[tuple[FirstPass, TriageResult]] = []
            for first, kwargs in pipeline.first_pass_isolating(task, items):
                enqueued_at = kwargs.get("enqueued_at")
                if first.needs_escalation and review_now:
                    decided.append((first, give_up(first, NO_FRONTIER, enqueued_at=enqueued_at)))
                elif first.needs_escalation:
                    escalate.apply_async(
                        kwargs={"first": first.model_dump(mode="json"), "enqueued_at": enqueued_at}
                    )
                    events_log.classified(first, None)
                else:
                    decided.append((first, first.result(enqueued_at=enqueued_at)))
            results: list[Written] = [(f.ticket, result, f.vector) for f, result in decided]
            outcomes = _write_back(results)
            for first, result in decided:
                if first.needs_escalation:
                    events_log.classified(first, None)
                    events_log.escalated(first, result)
                else:
                    events_log.classified(first, result)
            if outcomes is not None:
                _settle(results, outcomes)
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
    events_log.escalated(fp, result)


@app.task(
    bind=True,
    name=WRITEBACK_TASK,
    acks_late=True,
    max_retries=_ws.sink_max_retries,
    soft_time_limit=soft_limit_s(_ws.writeback_time_limit_s),
    time_limit=_ws.writeback_time_limit_s,
)
def writeback(
    self: Task,
    ticket: dict[str, Any],
    result: dict[str, Any],
    vector: str | list[float] | None = None,  # packed (`models.vectors`), or a list of numbers
) -> None:
    try:
        t, r, v = Ticket.parse(ticket), TriageResult.model_validate(result), unpack(vector)
    except (InvalidTicket, ValueError) as exc:
        dead_letter(WRITEBACK_TASK, {"ticket": ticket, "result": result}, str(exc))
        return
    try:
        done = write_back(t, r, v)
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
    events_log.written_back(t, r, done)


@app.task(
    bind=True,
    name=WRITEBACK_BATCH_TASK,
    acks_late=True,
    max_retries=_ws.sink_max_retries,
    soft_time_limit=soft_limit_s(_ws.writeback_time_limit_s),
    time_limit=_ws.writeback_time_limit_s,
)
def writeback_batch(self: Task, items: list[dict[str, Any]]) -> None:
    # One task, one round trip per step and one index upsert for a classify batch's results; a
    # ticket that fails goes on alone (`writeback`: its backoff, then the dead-letter list).
    parsed: list[tuple[Ticket, TriageResult, np.ndarray]] = []
    for item in items:
        try:
            t, r = Ticket.parse(item.get("ticket")), TriageResult.model_validate(item.get("result"))
            parsed.append((t, r, unpack(item.get("vector"))))
        except (InvalidTicket, ValueError, AttributeError) as exc:
            dead_letter(WRITEBACK_TASK, item, str(exc))
    try:
        outcomes = write_back_many(parsed)
    except Exception as exc:  # Redis unreachable, or unforeseen: the whole batch again, then stop
        if self.request.retries >= self.max_retries:
            for t, r, _ in parsed:
                reason = f"gave up after {self.request.retries + 1} tries: {exc!r}"
                dead_letter(WRITEBACK_TASK, _written(t, r), reason)
            return
        raise retry_later(self, exc) from exc
    try:
        _settle(parsed, outcomes)
    except Exception as exc:  # Redis went away: the batch comes back, and finds its work done
        raise retry_later(self, exc) from exc


def _settle(written: Sequence[Written], outcomes: Sequence[Outcome]) -> None:
    """After a batch's write-back: each failed ticket goes on alone, or to the dead-letter list."""
    for (t, r, vector), outcome in zip(written, outcomes, strict=True):
        if isinstance(outcome, PermanentError):
            dead_letter(WRITEBACK_TASK, _written(t, r), str(outcome))
        elif isinstance(outcome, Exception):  # this try counted: the next one is the 2nd
            again = as_payload(t, r, vector)
            writeback.apply_async(kwargs=again, retries=1, countdown=backoff_s(0, outcome))
        else:
            events_log.written_back(t, r, outcome)


def _write_back(decided: Sequence[Written]) -> list[Outcome] | None:
    """A classify batch's results: written back in this thread (`serve_here`), returning their
    outcomes; or sent to the writeback queue (None).

    Redis unreachable raises (the batch comes back, and the write-back dedupes). Any other
    failure of the write-back here sends the results through the queue instead, to its retries
    and dead-letter list.
    """
    if _writes_back and decided:
        try:
            return write_back_many(decided)
        except BrokerUnavailable:
            raise
        except Exception:
            log.exception("writing back %d results failed; sending them on", len(decided))
    _send_writebacks(decided)
    return None


def _send_writebacks(decided: Sequence[Written]) -> None:
    """One message for a batch's results; a lone result goes as itself (`naive`, `single`)."""
    if len(decided) == 1:
        _send_writeback(*decided[0])
    elif decided:
        writeback_batch.apply_async(kwargs={"items": [as_payload(*d) for d in decided]})


def _send_writeback(ticket: Ticket, result: TriageResult, vector: str | np.ndarray) -> None:
    writeback.apply_async(kwargs=as_payload(ticket, result, vector))


def _written(ticket: Ticket, result: TriageResult) -> dict[str, Any]:
    """A dead-lettered write-back as `writeback`'s payload, so it can be replayed as one."""
    return {"ticket": ticket.model_dump(mode="json"), "result": result.model_dump(mode="json")}
