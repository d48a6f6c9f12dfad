"""What the ledger reads off a (ticket, result) pair: its rows as plain dicts, and why a ticket
came to the desk. No SQLAlchemy here, so the rules can be read and tested on their own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from producer.ledger.records import Why
from producer.schemas import Ticket, TriageResult

#: The start of each reason `models.cascade` gives for `needs_review`, and what it means.
#: A frontier that stayed unavailable through its retries leaves the first pass unsure.
_REASONS: tuple[tuple[str, Why], ...] = (
    ("no frontier API configured", "no_frontier"),
    ("frontier budget exceeded", "budget"),
    ("frontier answer refused", "frontier_refused"),
    ("frontier label ", "frontier_refused"),  # "... is not in the label set"
    ("frontier says ", "disagreement"),
    ("frontier unavailable", "unsure"),
)
#: `TriageResult.via` spellings of the desk.
_DESK = {"review", "desk"}
#: How many of the cascade's labels a decision keeps as suggestions for the desk.
TOP = 3
#: The columns a decision, a person's label and a desk item (with its kind) are unique on.
KEY = ("task", "source", "ticket_id", "revision")


def why_for(reason: str | None) -> Why:
    """Why a `needs_review` result came to the desk; no reason: the cascade was unsure."""
    if not reason:
        return "unsure"
    for start, why in _REASONS:
        if reason.startswith(start):
            return why
    return "other"


def ticket_values(ticket: Ticket, seen_at: datetime) -> dict[str, Any]:
    origin = ticket.origin.model_dump(mode="json") if ticket.origin is not None else None
    return {
        "source": ticket.source,
        "ticket_id": ticket.id,
        "subject": ticket.subject,
        "body": ticket.body,
        "origin": origin,
        "first_seen_at": seen_at,
        "last_seen_at": seen_at,
    }


def key_of(result: TriageResult) -> tuple[str, str, str, str]:
    """What a decision is idempotent on: (task, source, ticket_id, revision)."""
    return (result.task, result.source, result.ticket_id, result.revision)


def key_values(result: TriageResult) -> dict[str, Any]:
    """`key_of` as a row's values, by the `KEY` columns' names."""
    return dict(zip(KEY, key_of(result), strict=True))


def decision_values(result: TriageResult) -> dict[str, Any]:
    return {
        **key_values(result),
        "label": result.label,
        "confidence": result.confidence,
        "decided_by": result.decided_by,
        "status": result.status,
        "reason": result.reason,
        "model_version": model_version_of(result),
        "adapter_version": result.versions.get("adapter"),
        "versions": dict(result.versions),
        "neighbours": [
            {
                "source": n.source,
                "ticket_id": n.ticket_id,
                "label": n.label,
                "score": n.score,
                "set_by": n.set_by,
            }
            for n in result.evidence
        ],
        "stages": [
            {
                "stage": s.stage,
                "label": s.label,
                "confidence": s.confidence,
                "latency_ms": s.latency_ms,
                "cost_usd": s.cost_usd,
            }
            for s in result.trace
        ],
        "suggestions": suggestions_of(result),
        "cost_usd": sum(s.cost_usd for s in result.trace),
        "decided_at": result.decided_at,
    }


def human_values(result: TriageResult) -> dict[str, Any]:
    """A human result's label row (the model's label before it is looked up by the caller)."""
    assert result.label is not None, "a person's label has a label"
    return {
        **key_values(result),
        "label": result.label,
        "labelled_by": result.labelled_by or "unknown",
        "via": via_of(result.via),
        "note": note_of(result),
        "labelled_at": result.decided_at,
    }


def via_of(via: str | None) -> str:
    """The channel in the ledger's words: the desk is ``desk`` whichever spelling came."""
    if via is None:
        return "api"
    return "desk" if via in _DESK else via


def note_of(result: TriageResult) -> str | None:
    """A person's note: `HumanLabel.as_writeback` puts it in `reason`, or a stock phrase."""
    if result.reason is None or result.reason.startswith("labelled by a person ("):
        return None
    return result.reason


def model_version_of(result: TriageResult) -> str | None:
    """The model that decided: the frontier's when it did, else the base the adapter sits on."""
    if result.decided_by == "frontier":
        for step in reversed(result.trace):
            if step.stage == "frontier" and step.detail.get("model"):
                return str(step.detail["model"])
    return result.versions.get("model") or result.versions.get("base")


def suggestions_of(result: TriageResult) -> list[dict[str, Any]]:
    """The cascade's best labels, most confident first: a stage's ``detail["top"]`` (a list of
    [label, confidence]) when one carries it, else each label a stage arrived at."""
    for step in result.trace:
        top = step.detail.get("top")
        if isinstance(top, list) and top:
            pairs = [(str(p[0]), float(p[1])) for p in top if isinstance(p, list | tuple)]
            return [{"label": lab, "confidence": c} for lab, c in pairs[:TOP]]
    best: dict[str, float] = {}
    found = [(s.label, s.confidence) for s in result.trace if s.stage != "human"]
    if result.decided_by != "human":
        found.append((result.label, result.confidence))
    for label, confidence in found:
        if label is not None:
            best[label] = max(confidence, best.get(label, 0.0))
    ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"label": lab, "confidence": c} for lab, c in ranked[:TOP]]
