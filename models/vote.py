"""The neighbour vote: a label distribution from the nearest labelled tickets, and how well they
cover a ticket at all (`scope_score`, the out-of-scope measure).

How it mixes with the classifier, and who then decides, is the cascade's rule (`models.cascade`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from producer.labelset import LabelSet
from producer.schemas import Neighbour


def neighbour_vote(
    neighbours: Sequence[Neighbour],
    labels: LabelSet,
    *,
    temperature: float,
    human_weight: float,
    model_weight: float = 1.0,
) -> np.ndarray | None:
    """Similarity-weighted label distribution of the neighbours; None when none is usable.

    Weights are a softmax over cosine similarities (a small temperature lets the closest tickets
    dominate); a human-confirmed neighbour counts `human_weight` times, a model-written one
    `model_weight` times (0: the cascade's own labels never vote).
    """
    usable = [
        n for n in neighbours if n.label in labels and (n.set_by == "human" or model_weight > 0)
    ]
    if not usable:
        return None
    scores = np.array([n.score for n in usable], dtype=np.float64) / temperature
    weights = np.exp(scores - scores.max())
    weights *= np.array([human_weight if n.set_by == "human" else model_weight for n in usable])
    vote = np.zeros(len(labels), dtype=np.float64)
    for n, w in zip(usable, weights, strict=True):
        vote[labels.index[n.label]] += w
    normalised: np.ndarray = vote / vote.sum()
    return normalised


def scope_score(
    neighbours: Sequence[Neighbour],
    label: str,
    labels: LabelSet,
    confidence: float = 1.0,
    *,
    model_weight: float = 1.0,
) -> float | None:
    """How well the labels cover a ticket the classifier calls `label` with `confidence`: that
    confidence times the cosine similarity of the nearest neighbour with that label (0 when none
    of the neighbours has it); None when no neighbour is usable (an empty index: nothing to
    judge by). Either alone misses tickets the other catches: of the Banking77 tickets whose
    labels were left out yet auto-labelled, flagging 3% of in-scope ones caught 47% with the
    product, 21% with the similarity alone, 28% with the confidence alone. The neighbours are
    those the vote counts: with `model_weight` 0, people's labels only.
    """
    usable = [
        n for n in neighbours if n.label in labels and (n.set_by == "human" or model_weight > 0)
    ]
    if not usable:
        return None
    return confidence * max((n.score for n in usable if n.label == label), default=0.0)
