"""Out of scope: how much a ticket looks like the labels it could be given, and leaving labels out.

A classifier trained on N labels gives one of them to everything, however unlike all of them a
ticket is. `models.vote.scope_score` weighs its energy (how large its logits are) by the labelled
tickets of the index: the similarity of the nearest neighbour that carries the label the
classifier picks. A ticket of a kind the label set does not know has no close neighbour of that
label, and no large logit. The cascade sends a ticket whose score is under the policy's
`scope_threshold` to review (`models.cascade.decide`); `conformal_threshold` chooses it on
in-scope held-out tickets so that at most a given share of in-scope tickets is flagged.

`leave_labels_out` is the evaluation's side: the same models and index as if some labels did not
exist (their logits dropped, so the rest's probabilities renormalised, their tickets out of the
search), so their tickets stand in for tickets of an unknown kind.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import replace

import numpy as np

from models.cascade import Search, TaskModels
from producer.labelset import LabelSet
from producer.schemas import Neighbour

#: Extra neighbours asked for when left-out labels' tickets are filtered from a search.
LEFT_OUT_MARGIN = 20


def conformal_threshold(scores: Sequence[float] | np.ndarray, alpha: float) -> float:
    """The split-conformal threshold that flags at most `alpha` of in-scope tickets.

    With n held-out in-scope scores, flagging below the floor(alpha * (n + 1))-th smallest
    flags a new in-scope ticket with probability at most alpha (exchangeability); 0 of them
    (too few tickets for that alpha) gives -inf: nothing is flagged.
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = math.floor(alpha * (len(s) + 1))
    if k < 1:
        return -math.inf
    return float(s[k - 1])


def leave_labels_out(
    task: TaskModels, search: Search, left_out: Collection[str]
) -> tuple[TaskModels, Search]:
    """`task` and `search` as if the labels `left_out` did not exist.

    The classifier's probabilities of the other labels are renormalised (the same as dropping
    the left-out logits before the softmax), and the search never returns a ticket of a
    left-out label (it asks for `LEFT_OUT_MARGIN` more and drops them).
    """
    gone = set(left_out)
    unknown = sorted(gone - set(task.labels.names))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the label set {task.labels.task!r}")
    keep = [i for i, name in enumerate(task.labels.names) if name not in gone]
    if len(keep) < 2:
        raise ValueError("leaving these labels out leaves fewer than two labels")
    labels = LabelSet.from_dict(
        {
            "task": task.labels.task,
            "labels": [
                {"name": lb.name, "description": lb.description}
                for lb in task.labels.labels
                if lb.name not in gone
            ],
        }
    )
    predict = task.predict_proba

    def predict_proba(texts: Sequence[str]) -> np.ndarray:
        kept = np.asarray(predict(texts))[:, keep]
        out: np.ndarray = kept / kept.sum(axis=1, keepdims=True)
        return out

    logits_of = task.predict_logits

    def predict_logits(texts: Sequence[str]) -> np.ndarray:
        assert logits_of is not None
        kept: np.ndarray = np.asarray(logits_of(texts))[:, keep]
        return kept  # their softmax is `predict_proba`'s renormalised probabilities

    def filtered(
        vectors: np.ndarray, k: int, exclude: Sequence[tuple[str, str]]
    ) -> list[list[Neighbour]]:
        found = search(vectors, k + LEFT_OUT_MARGIN, exclude)
        return [[n for n in row if n.label not in gone][:k] for row in found]

    return (
        replace(
            task,
            labels=labels,
            predict_proba=predict_proba,
            predict_logits=None if logits_of is None else predict_logits,
        ),
        filtered,
    )
