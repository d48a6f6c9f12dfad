"""The neighbour vote: a label distribution from the nearest labelled tickets.

How it mixes with the classifier, and who then decides, is the cascade's rule (`models.cascade`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from producer.labelset import LabelSet
from producer.schemas import Neighbour


def neighbour_vote(
    neighbours: Sequence[Neighbour], labels: LabelSet, *, temperature: float, human_weight: float
) -> np.ndarray | None:
    """Similarity-weighted label distribution of the neighbours; None when none is usable.

    Weights are a softmax over cosine similarities (a small temperature lets the closest tickets
    dominate); a human-confirmed neighbour counts `human_weight` times.
    """
    usable = [n for n in neighbours if n.label in labels]
    if not usable:
        return None
    scores = np.array([n.score for n in usable], dtype=np.float64) / temperature
    weights = np.exp(scores - scores.max())
    weights *= np.array([human_weight if n.set_by == "human" else 1.0 for n in usable])
    vote = np.zeros(len(labels), dtype=np.float64)
    for n, w in zip(usable, weights, strict=True):
        vote[labels.index[n.label]] += w
    normalised: np.ndarray = vote / vote.sum()
    return normalised
