"""The neighbour vote: a label distribution from the nearest labelled tickets, and how well they
cover a ticket at all (`scope_score`, the out-of-scope measure).

How it mixes with the classifier, and who then decides, is the cascade's rule (`models.cascade`).
"""

from __future__ import annotations

import math
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


#: How much the distance to the label's nearest ticket lowered the energy score in policies
#: tuned before `Policy.scope_similarity_weight` existed: a halving of the similarity weighed
#: like a 3.5-nat drop in the classifier's energy.
SIMILARITY_WEIGHT = 5.0
#: The similarity taken when no neighbour has the label (its log must be finite).
LEAST_SIMILARITY = 1e-3


def scope_score(
    neighbours: Sequence[Neighbour],
    label: str,
    labels: LabelSet,
    confidence: float = 1.0,
    *,
    model_weight: float = 1.0,
    energy: float | None = None,
    similarity_weight: float = SIMILARITY_WEIGHT,
) -> float | None:
    """How well the labels cover a ticket the classifier calls `label`; None when no neighbour
    is usable (an empty index: nothing to judge by). The neighbours are those the vote counts:
    with `model_weight` 0, people's labels only.

    With the classifier's `energy` (the log-sum-exp of its calibrated logits; large when some
    label's logit is large, Liu et al. 2020): the energy plus `similarity_weight` times the log
    of the similarity of the nearest neighbour with that label; with a weight of 0, the energy
    alone, neighbours or none. Else (policies tuned before it,
    classifiers that give no logits): `confidence` times that similarity. Of the Banking77
    tickets of 10 labels left out, cut where each flags 5% of in-scope tickets, at a classifier
    threshold of 0.5 the energy score let 12% through, the confidence product 27%
    (`python -m bench.scope_scores`); at 0.9 both about 4%. With the tuned thresholds, the energy
    alone did as well on Banking77 and better on the IT helpdesk set (`models.tuning.TuneTarget`).
    """
    if energy is not None and similarity_weight == 0.0:
        return energy
    usable = [
        n for n in neighbours if n.label in labels and (n.set_by == "human" or model_weight > 0)
    ]
    if not usable:
        return None
    nearest = max((n.score for n in usable if n.label == label), default=0.0)
    if energy is None:
        return confidence * nearest
    return energy + similarity_weight * math.log(max(nearest, LEAST_SIMILARITY))
