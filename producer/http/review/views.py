"""What a desk page shows, read off the ledger's records: the model's suggestions, the neighbours,
the frontier's answer, why the ticket came to review, and the labels a reviewer may choose."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from producer.ledger.records import DecisionRecord, ItemView, Suggestion

#: How many of the model's labels the ticket page offers first.
TOP = 3
#: Why an item is on the desk, in a reviewer's words (`producer.ledger.records.Why`).
WHY = {
    "unsure": "The model was unsure: no stage reached its confidence threshold.",
    "frontier_refused": "The frontier model's answer was refused (not a label of the set).",
    "budget": "The frontier model's budget was spent, so it was not asked.",
    "disagreement": "The frontier model disagreed with a confident first pass.",
    "no_frontier": "The model was unsure and no frontier model is configured.",
    "audit": "An audit: a random share of auto-labelled tickets, to measure precision. "
    "The model's label was already applied.",
    "other": "Another reason (below).",
}


@dataclass(frozen=True)
class Choice:
    """A label the reviewer may pick; `key` is its digit (1-9) when it has one."""

    label: str
    confidence: float | None
    suggested: bool
    key: int | None
    description: str = ""


@dataclass(frozen=True)
class Frontier:
    """The frontier model's answer, when it was asked."""

    label: str | None
    confidence: float
    model: str | None


def suggestions(decision: DecisionRecord | None) -> list[Suggestion]:
    """The model's best labels with their calibrated confidences: the decision's own
    suggestions, else the best confidence each stage gave a label."""
    if decision is None:
        return []
    if decision.suggestions:
        return list(decision.suggestions[:TOP])
    best: dict[str, float] = {}
    for stage in decision.stages:
        label = stage.get("label")
        if stage.get("stage") != "human" and isinstance(label, str):
            best[label] = max(float(stage.get("confidence") or 0.0), best.get(label, 0.0))
    ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Suggestion(label, confidence) for label, confidence in ranked[:TOP]]


def choices(
    suggested: Sequence[Suggestion], labels: Sequence[str], descriptions: dict[str, str]
) -> list[Choice]:
    """Every label of the task's set, the model's suggestions first; digits for the first 9."""
    first = [s for s in suggested if s.label in labels]
    rest = [name for name in labels if name not in {s.label for s in first}]
    ordered: list[tuple[str, float | None, bool]] = [(s.label, s.confidence, True) for s in first]
    ordered += [(name, None, False) for name in rest]
    return [
        Choice(label, conf, sug, n if n <= 9 else None, descriptions.get(label, ""))
        for n, (label, conf, sug) in enumerate(ordered, 1)
    ]


def frontier(decision: DecisionRecord | None) -> Frontier | None:
    """The frontier stage's answer, if the cascade asked it."""
    if decision is None:
        return None
    for stage in reversed(decision.stages):
        if stage.get("stage") == "frontier":
            label = stage.get("label")
            model = decision.model_version if decision.decided_by == "frontier" else None
            return Frontier(
                label if isinstance(label, str) else None,
                float(stage.get("confidence") or 0.0),
                model,
            )
    return None


def neighbours(view: ItemView, subjects: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """The neighbours the decision cited (ids, labels, similarity, who set the label), with
    the subject of those the reviewer may see."""
    if view.decision is None:
        return []
    return [
        {
            "source": str(n.get("source", "")),
            "ticket_id": str(n.get("ticket_id", "")),
            "label": str(n.get("label", "")),
            "score": float(n.get("score") or 0.0),
            "set_by": str(n.get("set_by", "model")),
            "subject": subjects.get((str(n.get("source")), str(n.get("ticket_id"))), ""),
        }
        for n in view.decision.neighbours
    ]
