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


def banking77_subset(names: list[str], per_label: int, labels_path: Path) -> list[LabelledText]:
    """A small Banking77 task: the label set of `names` saved at `labels_path`, and the first
    `per_label` training rows of each label, grouped by label in `names`' order."""
    from models.data import examples_dir
    from producer import LabelSet

    full = LabelSet.load(examples_dir() / "banking77" / "labels.json")
    kept = [
        {"name": lb.name, "description": lb.description} for lb in full.labels if lb.name in names
    ]
    LabelSet.from_dict({"task": "category", "labels": kept}).save(labels_path)
    rows = sample(examples_dir() / "banking77" / "train.csv", names, per_label)
    return [r for name in names for r in rows if r.label == name]
