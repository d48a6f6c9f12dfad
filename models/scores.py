"""Figures of one evaluated configuration: quality, selectivity, cost and latency.

Everything is computed from per-ticket outcomes (truth, label, confidence, auto-labelled or not),
so every configuration, classifier or frontier, is scored by the same lines. Tickets of labels
left out of scope (`triage eval --unknown-labels`) stand for tickets of an unknown kind: the
figures are those of the in-scope tickets, and `UNKNOWN_FIGURES` say how the others fared (any
label given to one of them is wrong).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from models.calibration import reliability
from producer.labelset import LabelSet

#: Keys of every configuration in ``--json``.
FIGURES = (
    "accuracy",
    "macro_f1",
    "ece",
    "coverage",
    "auto_precision",
    "escalation_rate",
    "cost_per_1k",
    "p50_ms",
    "p95_ms",
)
#: Keys added when labels were left out: the share of their tickets auto-labelled (each one a
#: mistake), and the precision of every auto label of the mixed queue.
UNKNOWN_FIGURES = ("unknown_tickets", "unknown_auto", "mixed_auto_precision")


class Scored(Protocol):
    @property
    def truth(self) -> str: ...
    @property
    def label(self) -> str | None: ...
    @property
    def confidence(self) -> float: ...
    @property
    def auto(self) -> bool: ...
    @property
    def escalated(self) -> bool: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def compute_ms(self) -> float: ...
    @property
    def cost_usd(self) -> float: ...


S = TypeVar("S", bound=Scored)


def summarise(
    outcomes: Sequence[Scored],
    labels: LabelSet,
    usd_per_hour: float,
    unknown: Collection[str] = (),
) -> dict[str, Any]:
    """The `FIGURES` of one configuration's in-scope tickets, plus their count; with `unknown`
    labels, the `UNKNOWN_FIGURES` too."""
    if not unknown:
        return _figures(outcomes, labels, usd_per_hour)
    inside = in_scope(outcomes, unknown)
    outside = [o for o in outcomes if o.truth in unknown]
    auto = [o for o in outcomes if o.auto]
    return {
        **_figures(inside, labels, usd_per_hour),
        "unknown_tickets": len(outside),
        "unknown_auto": float(np.mean([o.auto for o in outside])) if outside else 0.0,
        "mixed_auto_precision": (
            float(np.mean([o.label == o.truth for o in auto])) if auto else 0.0
        ),
    }


def in_scope(outcomes: Sequence[S], unknown: Collection[str]) -> list[S]:
    """The outcomes of tickets whose label was not left out."""
    return [o for o in outcomes if o.truth not in unknown]


def _figures(outcomes: Sequence[Scored], labels: LabelSet, usd_per_hour: float) -> dict[str, Any]:
    if not outcomes:
        return {"tickets": 0, **dict.fromkeys(FIGURES, 0.0)}
    correct = np.array([o.label == o.truth for o in outcomes])
    auto = np.array([o.auto for o in outcomes])
    confidence = np.array([o.confidence for o in outcomes])
    latency = np.array([o.latency_ms for o in outcomes])
    # Compute is billed by the hour of the machine that runs the models; frontier by the token.
    cost = np.array([o.cost_usd + o.compute_ms / 3.6e6 * usd_per_hour for o in outcomes])
    return {
        "tickets": len(outcomes),
        "accuracy": float(correct.mean()),
        "macro_f1": float(np.mean(list(per_label_f1(outcomes, labels).values()) or [0.0])),
        "ece": reliability(confidence, correct)[1],
        "coverage": float(auto.mean()),
        "auto_precision": float(correct[auto].mean()) if auto.any() else 0.0,
        "escalation_rate": float(np.mean([o.escalated for o in outcomes])),
        "cost_per_1k": float(cost.mean() * 1000.0),
        "p50_ms": float(np.percentile(latency, 50)),
        "p95_ms": float(np.percentile(latency, 95)),
    }


def risk_coverage(outcomes: Sequence[Scored], points: int = 50) -> list[tuple[float, float]]:
    """(coverage, error rate) when auto-labelling only the most confident tickets first."""
    if not outcomes:
        return []
    order = np.argsort([-o.confidence for o in outcomes], kind="stable")
    wrong = np.array([outcomes[i].label != outcomes[i].truth for i in order], dtype=np.float64)
    cum = np.cumsum(wrong) / np.arange(1, len(wrong) + 1)
    picks = np.unique(np.linspace(0, len(wrong) - 1, min(points, len(wrong))).astype(int))
    return [(float((i + 1) / len(wrong)), float(cum[i])) for i in picks]


def per_label_f1(outcomes: Sequence[Scored], labels: LabelSet) -> dict[str, float]:
    """F1 of each label that occurs in the truth or the predictions (macro-F1's terms)."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for o in outcomes:
        if o.label == o.truth:
            tp[o.truth] += 1
        else:
            fn[o.truth] += 1
            if o.label is not None:
                fp[o.label] += 1
    seen = [n for n in labels.names if tp[n] or fp[n] or fn[n]]
    return {n: 2 * tp[n] / (2 * tp[n] + fp[n] + fn[n]) for n in seen}


def top_confusions(outcomes: Sequence[Scored], n: int = 10) -> list[tuple[str, str, int]]:
    """The most frequent (truth, predicted) mistakes."""
    pairs = Counter((o.truth, o.label or "-") for o in outcomes if o.label != o.truth)
    return [(t, p, c) for (t, p), c in pairs.most_common(n)]
