"""One log line, and its counters, per ticket event: classified, escalated, written back,
dead-lettered.

Each line carries the same fields (event, ticket_id, source, task, stage, latency_ms, then the
decision), as ``key=value`` pairs by default or as one JSON object a line when
``TRIAGE_LOG_FORMAT=json`` (`worker.observe.logs`). The fields travel on
the log record too (``record.ticket_event``), so a formatter never parses the message.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, ParamSpec

from models.cascade import FirstPass
from producer.schemas import Ticket, TriageResult
from worker.observe.logs import logfmt
from worker.observe.metrics import get_metrics
from worker.observe.timing import task_elapsed_ms

#: One logger for ticket events, so they can be routed or filtered apart from the rest.
EVENTS_LOGGER = "triage.events"
log = logging.getLogger(EVENTS_LOGGER)

Event = Literal["classified", "escalated", "written_back", "dead_lettered"]
Stage = Literal["classify", "escalate", "writeback"]
P = ParamSpec("P")


def _never_raises(fn: Callable[P, None]) -> Callable[P, None]:
    # A bug in logging or counting must not fail a task: in `classify` it would send the
    # whole batch round again.
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            logging.getLogger(__name__).exception("could not record a %s event", fn.__name__)

    return wrapper


#: The first-pass stages whose per-ticket share of the batch time is the first-pass latency.
FIRST_PASS_STAGES = ("classifier", "retrieval")


@_never_raises
def classified(first: FirstPass, result: TriageResult | None) -> None:
    """The first pass decided `first` (`result`), or found it unsure (None: escalated)."""
    t, m = first.ticket, get_metrics()
    seconds = sum(s.latency_ms for s in first.trace if s.stage in FIRST_PASS_STAGES) / 1000.0
    m.first_pass_seconds.labels(t.task).observe(seconds)
    m.tickets.labels("classify", t.task, "escalated" if result is None else "decided").inc()
    if result is not None:
        _decided(result)
    ticket_event(
        "classified",
        "classify",
        t,
        seconds * 1000.0,
        decided_by=first.decided_by or "escalate",
        status=None if result is None else result.status,
        label=first.label,
        confidence=round(first.confidence, 4),
    )


@_never_raises
def escalated(first: FirstPass, result: TriageResult) -> None:
    """The escalation of `first` ended in `result` (frontier, or human review)."""
    m = get_metrics()
    m.tickets.labels("escalate", result.task, result.status).inc()
    _decided(result)
    for step in result.trace:
        if step.stage != "frontier":
            continue
        model = str(step.detail.get("model", "unknown"))
        for kind in ("input", "output"):
            m.frontier_tokens.labels(model, kind).inc(int(step.detail.get(f"{kind}_tokens", 0)))
        m.frontier_spend.labels(model).inc(step.cost_usd)
    ticket_event(
        "escalated",
        "escalate",
        first.ticket,
        task_elapsed_ms(),
        decided_by=result.decided_by,
        status=result.status,
        label=result.label,
        confidence=round(result.confidence, 4),
        reason=result.reason,
    )


@_never_raises
def written_back(ticket: Ticket, result: TriageResult, sinks: Mapping[str, str]) -> None:
    """Every sink took `result`; `sinks` says what each one did."""
    get_metrics().tickets.labels("writeback", ticket.task, "written").inc()
    ticket_event(
        "written_back",
        "writeback",
        ticket,
        task_elapsed_ms(),
        decided_by=result.decided_by,
        status=result.status,
        label=result.label,
        confidence=round(result.confidence, 4),
        total_ms=None if result.latency_ms is None else round(result.latency_ms, 1),
        sinks=",".join(f"{k}:{v}" for k, v in sorted(sinks.items()) if k != "event"),
    )


@_never_raises
def dead_lettered(task_name: str, payload: Any, reason: str) -> None:
    """A message was parked in the dead-letter list; `payload` may be anything (it was bad)."""
    stage = task_name.rpartition(".")[2] if task_name else "unknown"
    get_metrics().dead_lettered.labels(stage).inc()
    ticket: Any = payload.get("ticket") if isinstance(payload, dict) else None
    if not isinstance(ticket, dict):
        ticket = {}
    fields = {
        "ticket_id": str(ticket.get("id", "")),
        "source": str(ticket.get("source", "")),
        "task": str(ticket.get("task", "")),
    }
    _emit("dead_lettered", stage, fields, task_elapsed_ms(), {"reason": reason}, logging.ERROR)


def ticket_event(
    event: Event,
    stage: Stage,
    ticket: Ticket,
    latency_ms: float,
    **decision: Any,
) -> None:
    """Log one ticket event; fields that are None are left out."""
    ids = {"ticket_id": ticket.id, "source": ticket.source, "task": ticket.task}
    _emit(event, stage, ids, latency_ms, decision, logging.INFO)


def _decided(result: TriageResult) -> None:
    m = get_metrics()
    m.decisions.labels(result.task, result.decided_by, result.status).inc()
    if result.latency_ms is not None:
        m.decision_seconds.labels(result.task, result.decided_by).observe(
            max(result.latency_ms, 0.0) / 1000.0
        )


def _emit(
    event: str,
    stage: str,
    ids: Mapping[str, str],
    latency_ms: float,
    extra: Mapping[str, Any],
    level: int,
) -> None:
    if not log.isEnabledFor(level):
        return
    fields = {"event": event, **ids, "stage": stage, "latency_ms": round(latency_ms, 1)}
    fields.update({k: v for k, v in extra.items() if v is not None})
    log.log(level, "%s", logfmt(fields), extra={"ticket_event": fields})
