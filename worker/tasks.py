"""The tasks. Thin: validate the payload, call `models`, route on, choose retry or failure.

Every decision reaches the one write-back path (`worker.writeback.path.write_back`), which
writes it once per (task, source, id, revision). How a classify batch's tickets get there:

| first pass | this process                               | route                                  |
|------------|--------------------------------------------|----------------------------------------|
| confident  | serves writeback too, threads or solo pool | written back in the batch; a ticket    |
|            | (`serve_here`, `TRIAGE_WRITEBACK_INLINE`)  | that fails goes on as a `writeback`    |
| confident  | any other                                  | one `writeback` message for the batch  |
| unsure     | serves escalate too, and no frontier is    | review (`models.cascade.escalate` with |
|            | configured                                 | no frontier), written with the batch   |
| unsure     | any other                                  | an `escalate` message each; its result |
|            |                                            | is a `writeback` message of one        |
| unreadable | -                                          | the dead-letter list                   |

`writeback` writes its items; those that fail and may succeed later are its next try (with
backoff), until the last try, then the dead-letter list.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from celery import Task
from celery_batches import SimpleRequest

from models.cascade import FirstPass, review_after_retries, review_without_frontier
from models.cascade import escalate as escalate_one
from models.settings import get_settings as model_settings
from models.vectors import unpack
from producer.errors import BrokerUnavailable, InvalidTicket, PermanentError, RetryableError
from producer.names import CLASSIFY_TASK, ESCALATE_TASK, WRITEBACK_BATCH_TASK, WRITEBACK_TASK
from producer.schemas import Ticket, TriageResult
from worker import resources
from worker.app import app
from worker.batches import first_pass
from worker.batches.redelivery import RedeliveringBatches
from worker.observe import events
from worker.retrying import backoff_s, retry_later
from worker.settings import get_settings, soft_limit_s
from worker.writeback.dead_letter import dead_letter
from worker.writeback.path import Decision, Outcome, as_payload, write_back

log = logging.getLogger(__name__)
_ws = get_settings()
_serves_escalate = False
_writes_back = False


def serve_here(*, escalate: bool, writeback: bool) -> None:
    """`worker.runner`: the queues this process consumes besides classify.

    `writeback` (a threads or solo pool that serves the writeback queue, and
    `TRIAGE_WRITEBACK_INLINE`): a classify batch writes its results back itself, in its own
    thread after its pass, instead of sending them to this same process through Redis: each
    result dumped to JSON, pushed, popped, decoded and validated again, holding the GIL the
    next batch's pass needs. Not under prefork: a slow callback would count against the
    classify time limit, which kills the child.
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
    # past the publish retries) returned to be delivered again (`worker.batches.redelivery`).
    by_task, ids, unfinished = _by_task(requests)
    # A classify-only worker routes unsure tickets on: the escalate workers may hold the key.
    review_here = _serves_escalate and resources.frontier() is None
    for task, items in by_task.items():
        try:
            decided: list[Decision] = []
            for first, kwargs in first_pass.run_isolating(task, items):
                at = kwargs.get("enqueued_at")
                if not first.needs_escalation:
                    result = first.result(enqueued_at=at)
                    events.classified(first, result)
                elif review_here:
                    result = review_without_frontier(first, enqueued_at=at)
                    events.classified(first, None)
                    events.escalated(first, result)
                else:
                    escalate.apply_async(
                        kwargs={"first": first.model_dump(mode="json"), "enqueued_at": at}
                    )
                    events.classified(first, None)
                    continue
                decided.append((first.ticket, result, first.vector))
            _hand_over(decided)
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
    try:
        result = escalate_one(
            fp,
            labels=resources.labels(fp.ticket.task),
            frontier=resources.frontier(),
            budget=resources.budget(),
            policy=resources.policy(fp.ticket.task),
            max_examples=model_settings().frontier_examples,
            enqueued_at=enqueued_at,
        )
    except Exception as exc:  # retryable, or a failure nobody foresaw: retry, then a human
        if self.request.retries >= self.max_retries:
            tries = self.request.retries + 1
            result = review_after_retries(fp, exc, tries=tries, enqueued_at=enqueued_at)
        else:
            raise retry_later(self, exc) from exc
    writeback.apply_async(kwargs={"items": [as_payload(fp.ticket, result, fp.vector)]})
    events.escalated(fp, result)


_WRITEBACK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "max_retries": _ws.sink_max_retries,
    "soft_time_limit": soft_limit_s(_ws.writeback_time_limit_s),
    "time_limit": _ws.writeback_time_limit_s,
}


def _writeback(self: Task, items: list[Any] | None = None, **one: Any) -> None:
    """Write `items` (`as_payload` of each decision) back; or one decision given as
    ``ticket``/``result``/``vector`` (`producer.send_writeback`, and dead letters parked so)."""
    decisions: list[Decision] = []
    for item in items if isinstance(items, list) else [one if items is None else items]:
        try:
            decisions.append(_parse(item))
        except (InvalidTicket, ValueError, TypeError, AttributeError) as exc:
            dead_letter(WRITEBACK_TASK, {"items": [item]}, str(exc))
    try:
        again = _settle(decisions, write_back(decisions)) if decisions else []
    except Exception as exc:  # Redis unreachable, or unforeseen: all again (each step dedupes)
        again = [(d, exc) for d in decisions]
    if not again:
        return
    if self.request.retries >= self.max_retries:
        for decision, error in again:
            reason = f"gave up after {self.request.retries + 1} tries: {error!r}"
            dead_letter(WRITEBACK_TASK, {"items": [as_payload(*decision)]}, reason)
        return
    retry_items = [as_payload(*d) for d, _ in again]
    raise retry_later(self, _longest_wait(again), kwargs={"items": retry_items})


writeback = app.task(name=WRITEBACK_TASK, **_WRITEBACK_OPTIONS)(_writeback)
# Messages queued under the name a batch's write-back had before it became `writeback`.
app.task(name=WRITEBACK_BATCH_TASK, **_WRITEBACK_OPTIONS)(_writeback)


def _by_task(
    requests: list[SimpleRequest],
) -> tuple[dict[str, list[tuple[Ticket, dict[str, Any]]]], dict[str, list[str]], list[str]]:
    """A batch's tickets (with their message's kwargs) and request ids by label task; an
    unreadable one is dead-lettered, or its id returned when even that fails."""
    by_task: dict[str, list[tuple[Ticket, dict[str, Any]]]] = defaultdict(list)
    ids: dict[str, list[str]] = defaultdict(list)
    unfinished: list[str] = []
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
    return by_task, ids, unfinished


def _hand_over(decided: Sequence[Decision]) -> None:
    """A classify batch's results to the write-back path: in this thread (`serve_here`), or
    as one message. Redis unreachable raises (the batch comes back; the write-back dedupes);
    any other failure here sends the results through the queue, to its retries."""
    if not decided:
        return
    if _writes_back:
        try:
            again = _settle(decided, write_back(decided))
        except BrokerUnavailable:
            raise
        except Exception:
            log.exception("writing back %d results failed; sending them on", len(decided))
        else:
            if again:  # this try counted: the message is the 2nd
                wait_s = backoff_s(0, _longest_wait(again))
                items = [as_payload(*d) for d, _ in again]
                writeback.apply_async(kwargs={"items": items}, retries=1, countdown=wait_s)
            return
    writeback.apply_async(kwargs={"items": [as_payload(*d) for d in decided]})


def _settle(
    decisions: Sequence[Decision], outcomes: Sequence[Outcome]
) -> list[tuple[Decision, Exception]]:
    """Log what was written, dead-letter what never will be; return what may succeed later."""
    again: list[tuple[Decision, Exception]] = []
    for decision, outcome in zip(decisions, outcomes, strict=True):
        ticket, result, _ = decision
        if isinstance(outcome, PermanentError):
            dead_letter(WRITEBACK_TASK, {"items": [as_payload(*decision)]}, str(outcome))
        elif isinstance(outcome, Exception):
            again.append((decision, outcome))
        else:
            events.written_back(ticket, result, outcome)
    return again


def _parse(item: Any) -> Decision:
    return (
        Ticket.parse(item.get("ticket")),
        TriageResult.model_validate(item.get("result")),
        unpack(item.get("vector")),
    )


def _longest_wait(failed: Sequence[tuple[Decision, Exception]]) -> Exception:
    """The failure whose peer asked to wait longest (its Retry-After sets the next try)."""
    return max(
        (exc for _, exc in failed),
        key=lambda e: (e.retry_after_s or 0.0) if isinstance(e, RetryableError) else 0.0,
    )
