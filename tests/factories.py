"""Small builders shared by tests."""

from __future__ import annotations

from pathlib import Path

from models.data import LabelledText, read_labelled
from producer import Ticket, TriageResult


def result_for(
    ticket: Ticket, label: str, decided_by: str = "classifier", confidence: float = 0.9
) -> TriageResult:
    """A labelled result for `ticket`, as the cascade would write it."""
    return TriageResult(
        ticket_id=ticket.id,
        source=ticket.source,
        task=ticket.task,
        revision=ticket.effective_revision,
        label=label,
        confidence=confidence,
        decided_by=decided_by,  # type: ignore[arg-type]
        status="labelled",
    )


def sample(path: Path, names: list[str], per_label: int) -> list[LabelledText]:
    """The first `per_label` rows of each label in `names`, in file order."""
    counts = dict.fromkeys(names, 0)
    out = []
    for row in read_labelled(path):
        if row.label in counts and counts[row.label] < per_label:
            counts[row.label] += 1
            out.append(row)
    return out
