"""Has recent traffic moved away from what the adapter was trained and tuned on?

Four checks, each against a limit (`Thresholds`), any one of which makes a retrain due:
- label mix: total variation distance between the classifier's labels on recent tickets and
  the training labels (the share of tickets that would have to change label to match);
- confidence: population stability index (PSI) of the classifier's calibrated top confidence,
  recent tickets against the held-out split saved at training;
- escalation: the share of tickets the first pass left to the frontier or a human, above what
  `triage tune` expected (1 - its cross-validated coverage);
- corrections: the share of model labels a human changed (feedback).

Plain numbers in, a `DriftReport` out; reading Redis and the feedback file is the caller's job.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from producer.errors import ModelError

#: `models.classifier.META_FILE`, not imported from there: that module pulls in torch.
META_FILE = "triage_adapter.json"
#: Equal-width bins of a confidence histogram over [0, 1].
CONFIDENCE_BINS = 10
#: Added to every share before a PSI, so an empty bin does not make it infinite.
_EPS = 1e-4


@dataclass(frozen=True)
class Thresholds:
    #: Total variation distance of the label mix (0: same mix, 1: disjoint).
    max_label_tv: float = 0.2
    #: PSI of the confidence histogram; 0.25 is the usual "significant shift" mark.
    max_confidence_psi: float = 0.25
    #: Escalation rate above the tuned expectation, absolute (0.1: ten points more).
    max_escalation_excess: float = 0.10
    #: Share of model labels that humans corrected.
    max_correction_rate: float = 0.05
    #: Fewer recent tickets than this and no check is trusted (sampling noise dominates).
    min_tickets: int = 200


@dataclass(frozen=True)
class Reference:
    """What the adapter was trained and tuned on; None where the adapter did not record it."""

    labels: dict[str, int] | None
    confidence: list[int] | None
    expected_escalation: float | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Traffic:
    """Recent model-decided tickets of one task (human results excluded)."""

    tickets: int
    labels: dict[str, int]
    confidence: list[int]
    escalated: int
    needs_review: int
    #: Tickets with a model label and a human one.
    reviewed: int
    #: Of those, how many got a different label from the human.
    corrected: int


@dataclass(frozen=True)
class Check:
    name: str
    #: The measure compared with `limit` (None: not measurable, see `detail`).
    value: float | None
    limit: float
    due: bool
    detail: str


@dataclass(frozen=True)
class DriftReport:
    task: str
    tickets: int
    checks: list[Check]
    notes: list[str]

    @property
    def due(self) -> bool:
        return any(c.due for c in self.checks)

    @property
    def verdict(self) -> str:
        reasons = [f"{c.name} ({c.detail})" for c in self.checks if c.due]
        return "retrain due: " + "; ".join(reasons) if reasons else "no retrain due"

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "tickets": self.tickets,
            "retrain_due": self.due,
            "verdict": self.verdict,
            "checks": [asdict(c) for c in self.checks],
            "notes": self.notes,
        }


def assess(task: str, reference: Reference, traffic: Traffic, limits: Thresholds) -> DriftReport:
    notes = list(reference.notes)
    if traffic.tickets < limits.min_tickets:
        notes.append(
            f"only {traffic.tickets} recent tickets (need {limits.min_tickets}): not judged"
        )
        checks = [
            Check(name, None, limit, False, "too few tickets")
            for name, limit in (
                ("label mix", limits.max_label_tv),
                ("confidence", limits.max_confidence_psi),
                ("escalation", limits.max_escalation_excess),
                ("corrections", limits.max_correction_rate),
            )
        ]
        return DriftReport(task, traffic.tickets, checks, notes)
    checks = [
        _label_check(reference, traffic, limits),
        _confidence_check(reference, traffic, limits),
        _escalation_check(reference, traffic, limits),
        _correction_check(traffic, limits),
    ]
    return DriftReport(task, traffic.tickets, checks, notes)


def reference_from_adapter(adapter_dir: Path) -> Reference:
    """The reference of an adapter from its metadata, its held-out file and its policy.

    Adapters trained before these records were kept lack the label counts and the confidence
    histogram: the label mix then comes from the held-out file (a stratified split, so the same
    mix), and the confidence check is skipped with a note.
    """
    meta_path = adapter_dir / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{meta_path} is not a trained adapter's metadata ({exc})") from exc
    notes: list[str] = []
    labels = meta.get("label_distribution")
    if not isinstance(labels, dict):
        labels = _heldout_labels(adapter_dir / "heldout.jsonl")
        if labels is not None:
            notes.append("label mix from heldout.jsonl (the adapter predates label counts)")
        else:
            notes.append("no training label mix recorded: label mix not checked (retrain once)")
    confidence = meta.get("heldout_confidence")
    if not (isinstance(confidence, list) and len(confidence) == CONFIDENCE_BINS):
        confidence = None
        notes.append("no held-out confidence recorded: confidence not checked (retrain once)")
    expected = None
    policy = adapter_dir / "policy.json"
    if policy.is_file():
        tuning = json.loads(policy.read_text(encoding="utf-8")).get("tuning") or {}
        if isinstance(tuning.get("cv_coverage"), int | float):
            expected = 1.0 - float(tuning["cv_coverage"])
    if expected is None:
        notes.append("no tuned policy.json: escalation not checked (run `triage tune`)")
    return Reference(labels, confidence, expected, notes)


def confidence_histogram(values: Iterable[float]) -> list[int]:
    """Counts of `values` in `CONFIDENCE_BINS` equal bins over [0, 1] (1.0 in the last)."""
    counts = [0] * CONFIDENCE_BINS
    for v in values:
        counts[min(CONFIDENCE_BINS - 1, max(0, int(float(v) * CONFIDENCE_BINS)))] += 1
    return counts


def total_variation(p: Mapping[str, int], q: Mapping[str, int]) -> float:
    """Half the L1 distance between two count tables as distributions."""
    sp, sq = sum(p.values()) or 1, sum(q.values()) or 1
    return 0.5 * sum(abs(p.get(k, 0) / sp - q.get(k, 0) / sq) for k in set(p) | set(q))


def psi(expected: Iterable[int], actual: Iterable[int]) -> float:
    """Population stability index of `actual` counts against `expected`, bin by bin."""
    e, a = list(expected), list(actual)
    se, sa = sum(e) or 1, sum(a) or 1
    out = 0.0
    for ei, ai in zip(e, a, strict=True):
        pe, pa = ei / se + _EPS, ai / sa + _EPS
        out += (pa - pe) * math.log(pa / pe)
    return out


def _label_check(reference: Reference, traffic: Traffic, limits: Thresholds) -> Check:
    if reference.labels is None:
        return Check("label mix", None, limits.max_label_tv, False, "no training mix")
    tv = total_variation(traffic.labels, reference.labels)
    return Check(
        "label mix",
        tv,
        limits.max_label_tv,
        tv > limits.max_label_tv,
        _moved(reference.labels, traffic.labels) + f"; TV {tv:.2f}",
    )


def _confidence_check(reference: Reference, traffic: Traffic, limits: Thresholds) -> Check:
    if reference.confidence is None:
        return Check("confidence", None, limits.max_confidence_psi, False, "no held-out record")
    value = psi(reference.confidence, traffic.confidence)
    detail = (
        f"mean {_mean(traffic.confidence):.2f} vs {_mean(reference.confidence):.2f} held out; "
        f"PSI {value:.2f}"
    )
    return Check(
        "confidence", value, limits.max_confidence_psi, value > limits.max_confidence_psi, detail
    )


def _escalation_check(reference: Reference, traffic: Traffic, limits: Thresholds) -> Check:
    rate = traffic.escalated / traffic.tickets
    review = traffic.needs_review / traffic.tickets
    if reference.expected_escalation is None:
        detail = f"{rate:.0%} escalated, {review:.0%} to review; no tuned expectation"
        return Check("escalation", None, limits.max_escalation_excess, False, detail)
    excess = rate - reference.expected_escalation
    detail = (
        f"{rate:.0%} escalated vs {reference.expected_escalation:.0%} tuned; {review:.0%} to review"
    )
    return Check(
        "escalation",
        excess,
        limits.max_escalation_excess,
        excess > limits.max_escalation_excess,
        detail,
    )


def _correction_check(traffic: Traffic, limits: Thresholds) -> Check:
    rate = traffic.corrected / traffic.tickets
    detail = (
        f"{traffic.corrected} of {traffic.tickets} labels changed by a human ({rate:.1%}; "
        f"{traffic.reviewed} reviewed)"
    )
    return Check(
        "corrections", rate, limits.max_correction_rate, rate > limits.max_correction_rate, detail
    )


def _moved(reference: Mapping[str, int], traffic: Mapping[str, int]) -> str:
    """The label whose share moved most, e.g. ``card_arrival 3% -> 41%``."""
    sr, st = sum(reference.values()) or 1, sum(traffic.values()) or 1
    label = max(
        set(reference) | set(traffic),
        key=lambda k: abs(traffic.get(k, 0) / st - reference.get(k, 0) / sr),
    )
    return f"{label} {reference.get(label, 0) / sr:.0%} -> {traffic.get(label, 0) / st:.0%}"


def _mean(histogram: list[int]) -> float:
    total = sum(histogram) or 1
    return sum((i + 0.5) / CONFIDENCE_BINS * n for i, n in enumerate(histogram)) / total


def _heldout_labels(path: Path) -> dict[str, int] | None:
    if not path.is_file():
        return None
    counts: Counter[str] = Counter()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                # `write_labelled` rows: "text" and one label field (named after the task's).
                row = json.loads(line)
                counts.update(str(v) for k, v in row.items() if k != "text")
    return dict(counts) or None
