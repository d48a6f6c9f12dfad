"""The cascade keeps the three best labels of the distribution it decided from, which the
ledger stores as the review desk's suggestions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.cascade import Policy, TaskModels, first_pass, review_without_frontier, top_labels
from producer import LabelSet, Neighbour, Ticket
from producer.ledger.facts import suggestions_of

LABELS = LabelSet.from_dict({"labels": [{"name": n} for n in "abcde"]})


def _run(probs: list[float], neighbours: list[Neighbour], policy: Policy) -> list[list[object]]:
    [first] = first_pass(
        [Ticket(id="1", body="ticket")],
        task=TaskModels(LABELS, lambda texts: np.array([probs]), "adapter@1"),
        embed=lambda texts: np.ones((len(texts), 4), dtype=np.float32),
        search=lambda vectors, k, exclude: [neighbours],
        policy=policy,
    )
    cascade = first.trace[-1]
    assert cascade.stage == "cascade"
    top: list[list[object]] = cascade.detail["top"]
    json.dumps(top)  # it travels in the trace to escalate and the result store
    return top


def test_the_classifiers_top_three_when_it_decides() -> None:
    top = _run([0.05, 0.91, 0.01, 0.02, 0.01], [], Policy(classifier_threshold=0.9))
    assert [label for label, _ in top] == ["b", "a", "d"]
    assert [c for _, c in top] == pytest.approx([0.91, 0.05, 0.02])


def test_the_mixs_top_three_when_the_mix_decides_or_nobody_does() -> None:
    votes = [Neighbour(ticket_id=f"n{i}", source="s", label="c", score=0.9) for i in range(3)]
    mixed = Policy(classifier_threshold=0.99, retrieval_threshold=0.6, classifier_weight=0.5)
    top = _run([0.5, 0.3, 0.2, 0.0, 0.0], votes, mixed)
    # 0.5 x classifier + 0.5 x a unanimous vote for c.
    assert [label for label, _ in top] == ["c", "a", "b"]
    assert [c for _, c in top] == pytest.approx([0.6, 0.25, 0.15])
    unsure = _run([0.4, 0.35, 0.25, 0.0, 0.0], [], mixed.deciding())
    assert [label for label, _ in unsure] == ["a", "b", "c"]


def test_fewer_labels_than_three_and_ties_keep_the_label_sets_order() -> None:
    assert top_labels(np.array([0.5, 0.5]), ["x", "y"]) == [["x", 0.5], ["y", 0.5]]


def test_the_ledger_reads_them_as_the_suggestions() -> None:
    [first] = first_pass(
        [Ticket(id="1", body="ticket")],
        task=TaskModels(LABELS, lambda texts: np.array([[0.1, 0.2, 0.3, 0.4, 0.0]]), "v"),
        embed=lambda texts: np.ones((len(texts), 4), dtype=np.float32),
        search=lambda vectors, k, exclude: [[]],
        policy=Policy().deciding(),
    )
    suggestions = suggestions_of(review_without_frontier(first))  # unsure: to the desk
    assert [s["label"] for s in suggestions] == ["d", "c", "b"]
    assert [s["confidence"] for s in suggestions] == pytest.approx([0.4, 0.3, 0.2])
