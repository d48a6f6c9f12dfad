"""The cascade policy on known probabilities: who decides, and when a human must."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.cascade import (
    NEVER,
    NO_FRONTIER,
    FirstPass,
    Policy,
    TaskModels,
    decide,
    decide_all,
    escalate,
    first_pass,
    mix,
    review_after_retries,
    review_without_frontier,
)
from models.frontier import FrontierAnswer
from models.vectors import unpack
from models.vote import neighbour_vote, scope_score
from producer import LabelSet, Neighbour, Ticket
from producer.errors import BudgetExceeded, FrontierRefused

LABELS = LabelSet.from_dict({"labels": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})


def nb(label: str, score: float, set_by: str = "model") -> Neighbour:
    return Neighbour(
        ticket_id=f"n-{label}-{score}", source="s", label=label, score=score, set_by=set_by
    )  # type: ignore[arg-type]


def run(
    probs: list[list[float]],
    neighbours: list[list[Neighbour]],
    policy: Policy,
) -> list[FirstPass]:
    tickets = [Ticket(id=str(i), body=f"ticket {i}") for i in range(len(probs))]

    def search(vectors: np.ndarray, k: int, exclude: Sequence[tuple[str, str]]):
        assert [e[1] for e in exclude] == [t.id for t in tickets]
        return neighbours

    return first_pass(
        tickets,
        task=TaskModels(LABELS, lambda texts: np.array(probs), "adapter@1"),
        embed=lambda texts: np.ones((len(texts), 4), dtype=np.float32) / 2,
        search=search,
        policy=policy,
    )


def test_routing_by_thresholds() -> None:
    policy = Policy(classifier_threshold=0.9, retrieval_threshold=0.8, classifier_weight=0.5)
    confident = [0.95, 0.03, 0.02]
    unsure = [0.6, 0.3, 0.1]
    agreeing = [nb("a", 0.9)] * 3
    out = run([confident, unsure, unsure], [[], agreeing, []], policy)
    assert [f.decided_by for f in out] == ["classifier", "retrieval", None]
    assert out[1].label == "a" and out[1].confidence == pytest.approx(0.5 * 0.6 + 0.5 * 1.0)
    assert out[2].needs_escalation and out[2].label == "a"
    assert [s.stage for s in out[0].trace] == ["classifier", "retrieval", "cascade"]
    assert out[0].versions["adapter"] == "adapter@1" and unpack(out[0].vector).size == 4


def test_the_models_turn_covers_the_passes_and_not_the_search_vote_or_results() -> None:
    """A worker's next batch may start its passes while this one searches and votes."""
    import threading

    turn = threading.Lock()
    held: dict[str, bool] = {}
    tickets = [Ticket(id=str(i), body=f"ticket {i}") for i in range(3)]

    def classify(texts: Sequence[str]) -> np.ndarray:
        held["classify"] = turn.locked()
        return np.tile([0.95, 0.03, 0.02], (len(texts), 1))

    def embed(texts: Sequence[str]) -> np.ndarray:
        held["embed"] = turn.locked()
        return np.ones((len(texts), 4), dtype=np.float32) / 2

    def search(vectors: np.ndarray, k: int, exclude: Sequence[tuple[str, str]]):
        held["search"] = turn.locked()
        return [[nb("a", 0.9)] for _ in exclude]

    out = first_pass(
        tickets,
        task=TaskModels(LABELS, classify, "adapter@1"),
        embed=embed,
        search=search,
        policy=Policy(classifier_threshold=0.9, retrieval_threshold=0.8),
        models_turn=turn,
    )
    assert held == {"classify": True, "embed": True, "search": False}
    assert not turn.locked() and [f.decided_by for f in out] == ["classifier"] * 3


def test_evidence_names_the_neighbours_without_their_text() -> None:
    policy = Policy(classifier_threshold=0.9, retrieval_threshold=0.8, classifier_weight=0.5)
    agreeing = [nb("a", 0.9).model_copy(update={"snippet": "someone else's ticket"})] * 3
    [first] = run([[0.6, 0.3, 0.1]], [agreeing], policy)
    result = first.result()
    assert [(n.ticket_id, n.label, n.score) for n in result.evidence] == [
        (n.ticket_id, n.label, n.score) for n in agreeing
    ]
    assert all(n.snippet == "" for n in result.evidence)
    assert all(n.snippet for n in first.neighbours)  # the frontier's examples keep theirs


def test_human_confirmed_neighbours_count_more() -> None:
    neighbours = [nb("a", 0.80), nb("b", 0.80, "human")]
    vote = neighbour_vote(neighbours, LABELS, temperature=0.05, human_weight=3.0)
    assert vote is not None
    assert vote[LABELS.index["b"]] == pytest.approx(0.75)


def test_unknown_neighbour_labels_are_ignored_and_no_vote_means_classifier_alone() -> None:
    assert neighbour_vote([nb("zzz", 0.9)], LABELS, temperature=0.05, human_weight=2) is None
    probs = np.array([0.2, 0.5, 0.3])
    assert mix(probs, None, 0.65) is probs


class Frontier:
    def __init__(self, label: str = "b", error: Exception | None = None) -> None:
        self.label, self.error, self.calls = label, error, 0

    def classify(self, ticket, labels, examples) -> FrontierAnswer:
        self.calls += 1
        if self.error:
            raise self.error
        return FrontierAnswer(self.label, 0.8, 100, 5, 0.001, 12.0, "m")

    def close(self) -> None:
        pass


class Budget:
    def __init__(self, exceeded: bool = False) -> None:
        self.exceeded, self.spent = exceeded, 0.0

    def check(self) -> None:
        if self.exceeded:
            raise BudgetExceeded("cap reached")

    def record(self, cost_usd: float) -> float:
        self.spent += cost_usd
        return self.spent


def unsure(confidence: float = 0.5) -> FirstPass:
    [fp] = run(
        [[confidence, 1 - confidence, 0.0]],
        [[]],
        Policy().deciding(),
    )
    return fp


def test_frontier_decides_and_its_cost_is_recorded() -> None:
    budget = Budget()
    result = escalate(
        unsure(),
        labels=LABELS,
        frontier=Frontier("b"),
        budget=budget,  # type: ignore[arg-type]
        policy=Policy(disagreement_margin=0.9),
    )
    assert (result.status, result.decided_by, result.label) == ("labelled", "frontier", "b")
    assert result.trace[-1].cost_usd == budget.spent == 0.001


@pytest.mark.parametrize(
    ("frontier", "budget", "reason"),
    [
        (None, Budget(), "no frontier"),
        (Frontier(error=FrontierRefused("label 'x' is not in the enum")), Budget(), "refused"),
        (Frontier(), Budget(exceeded=True), "budget"),
    ],
)
def test_review_when_the_frontier_cannot_decide(frontier, budget, reason) -> None:
    result = escalate(unsure(), labels=LABELS, frontier=frontier, budget=budget, policy=Policy())
    assert result.status == "needs_review" and reason in (result.reason or "")
    assert result.label == "a"  # the first pass's suggestion stays visible to the reviewer


def test_disagreement_with_a_confident_first_pass_goes_to_review() -> None:
    result = escalate(
        unsure(0.7),
        labels=LABELS,
        frontier=Frontier("b"),
        budget=None,  # type: ignore[arg-type]
        policy=Policy(disagreement_margin=0.6),
    )
    assert result.status == "needs_review" and result.label == "b"
    assert "first pass 'a'" in (result.reason or "")


def test_the_worker_fallbacks_send_the_suggestion_to_review_with_the_trace() -> None:
    fp = unsure()
    without = escalate(fp, labels=LABELS, frontier=None, budget=None, policy=Policy())
    at = {"decided_at"}  # a clock reading, not a decision
    assert review_without_frontier(fp).model_dump(exclude=at) == without.model_dump(exclude=at)
    assert without.reason == NO_FRONTIER
    retried = review_after_retries(fp, TimeoutError("read timed out"), tries=6)
    assert retried.reason == "frontier unavailable after 6 tries: read timed out"
    assert review_after_retries(fp, TimeoutError("x")).reason == "frontier unavailable: x"
    for result in (without, retried):
        assert result.trace == fp.trace and result.status == "needs_review"
        assert (result.label, result.confidence) == (fp.label, fp.confidence)


# Round values too: ties with a threshold are where two restatements of a rule part ways.
confidences = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.5, 0.8, 0.9, 1.0]))
thresholds = st.one_of(confidences, st.just(NEVER))


scopes = st.one_of(confidences, st.just(math.nan))


@given(
    tickets=st.lists(st.tuples(confidences, confidences, scopes), min_size=1, max_size=30),
    pairs=st.lists(
        st.tuples(thresholds, thresholds, st.one_of(st.none(), confidences)),
        min_size=1,
        max_size=6,
    ),
)
def test_decide_all_is_decide_over_a_grid_of_thresholds(
    tickets: list[tuple[float, float, float]], pairs: list[tuple[float, float, float | None]]
) -> None:
    clf, mixed, scope = (np.array(column) for column in zip(*tickets, strict=True))
    grid_c, grid_m = (np.array(column)[:, None] for column in list(zip(*pairs, strict=True))[:2])
    for j, (classifier, retrieval, cut) in enumerate(pairs):
        by_clf, by_mix = decide_all(clf, mixed, grid_c, grid_m, scope, cut)
        policy = Policy(
            classifier_threshold=classifier, retrieval_threshold=retrieval, scope_threshold=cut
        )
        decided = [decide(c, m, policy, None if math.isnan(o) else o) for c, m, o in tickets]
        assert by_clf[j].tolist() == [d == "classifier" for d in decided]
        assert by_mix[j].tolist() == [d == "retrieval" for d in decided]


def test_a_ticket_unlike_every_label_goes_to_review_not_to_the_frontier() -> None:
    policy = Policy(classifier_threshold=0.9, retrieval_threshold=0.8, scope_threshold=0.6)
    sure = [0.97, 0.02, 0.01]
    near, far = [nb("a", 0.9), nb("b", 0.8)], [nb("b", 0.5), nb("a", 0.4)]
    inside, outside, empty = run([sure, sure, sure], [near, far, []], policy)
    assert inside.decided_by == "classifier" and inside.out_of_scope is None
    assert empty.decided_by == "classifier"  # no neighbours: nothing to judge by
    assert outside.needs_escalation and outside.label == "a"
    assert outside.out_of_scope and "out of scope" in outside.out_of_scope
    cascade = outside.trace[-1].detail
    assert cascade["decision"] == "out_of_scope" and cascade["scope"] == pytest.approx(0.97 * 0.4)
    frontier = Frontier("a")
    result = escalate(outside, labels=LABELS, frontier=frontier, budget=None, policy=policy)
    assert frontier.calls == 0  # its answer must be a label: none is right here
    assert result.status == "needs_review" and result.reason == outside.out_of_scope
    assert review_without_frontier(outside).reason == outside.out_of_scope
    assert FirstPass.model_validate(outside.model_dump(mode="json")).out_of_scope
    unchecked = run([sure], [far], policy.model_copy(update={"scope_threshold": None}))
    assert unchecked[0].decided_by == "classifier"  # a policy tuned before the check


def test_the_energy_score_reads_the_logits_and_the_nearest_ticket_of_the_label() -> None:
    logits = np.array([[4.0, 1.0, 0.0], [0.5, 0.4, 0.3], [4.0, 1.0, 0.0]])
    energy = np.log(np.exp(logits).sum(axis=1))
    near, far = [nb("a", 0.9), nb("b", 0.8)], [nb("b", 0.5), nb("a", 0.3)]
    tickets = [Ticket(id=str(i), body=f"ticket {i}") for i in range(3)]
    task = TaskModels(
        LABELS,
        lambda texts: pytest.fail("the first pass reads the logits alone"),
        "adapter@1",
        predict_logits=lambda texts: logits,
    )
    policy = Policy(
        classifier_threshold=0.9, retrieval_threshold=0.99, scope_kind="energy", scope_threshold=2.0
    )
    sure, flat, far_away = first_pass(
        tickets,
        task=task,
        embed=lambda texts: np.ones((len(texts), 4), dtype=np.float32) / 2,
        search=lambda vectors, k, exclude: [near, near, far],
        policy=policy,
    )
    softmax = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert sure.trace[0].confidence == pytest.approx(float(softmax.max()), rel=1e-6)
    assert sure.decided_by == "classifier" and sure.out_of_scope is None
    assert sure.trace[-1].detail["scope"] == pytest.approx(energy[0] + 5 * math.log(0.9))
    # Small logits everywhere (no label of its kind) and a far nearest ticket: both flagged.
    assert flat.out_of_scope and "energy" in flat.out_of_scope
    assert flat.trace[-1].detail["scope"] == pytest.approx(energy[1] + 5 * math.log(0.9))
    assert far_away.out_of_scope and far_away.trace[-1].detail["scope"] == pytest.approx(
        energy[2] + 5 * math.log(0.3)
    )
    assert scope_score(near, "c", LABELS, energy=3.0) == pytest.approx(3.0 + 5 * math.log(1e-3))
    # An energy threshold and a classifier without logits (an adapter set): no check at all,
    # rather than a confidence compared with an energy.
    [unchecked] = run([[0.97, 0.02, 0.01]], [far], policy)
    assert unchecked.decided_by == "classifier" and "scope" not in unchecked.trace[-1].detail
    # Policies tuned before the energy score keep the confidence product.
    assert Policy.model_validate_json('{"scope_threshold": 0.5}').scope_kind == "confidence"
    # and those tuned before its weight, the weight they were tuned with.
    assert Policy.model_validate_json('{"scope_kind": "energy"}').scope_similarity_weight == 5.0


def test_the_energy_alone_needs_no_neighbour_and_names_itself() -> None:
    logits = np.array([[0.2, 0.1, 0.0], [6.0, 0.0, 0.0]])
    energy = np.log(np.exp(logits).sum(axis=1))
    task = TaskModels(LABELS, lambda texts: pytest.fail("logits only"), "a@1", lambda t: logits)
    policy = Policy(
        classifier_threshold=0.9,
        retrieval_threshold=0.99,
        scope_kind="energy",
        scope_similarity_weight=0.0,
        scope_threshold=2.0,
    )
    unlike, sure = first_pass(
        [Ticket(id=str(i), body=f"ticket {i}") for i in range(2)],
        task=task,
        embed=lambda texts: np.ones((len(texts), 4), dtype=np.float32) / 2,
        search=lambda vectors, k, exclude: [[], [nb("b", 0.1)]],  # no "a" near either
        policy=policy,
    )
    assert unlike.trace[-1].detail["scope"] == pytest.approx(energy[0])
    assert unlike.out_of_scope and "no label's logit is large" in unlike.out_of_scope
    assert sure.trace[-1].detail["scope"] == pytest.approx(energy[1])
    assert sure.decided_by == "classifier" and sure.out_of_scope is None
    assert scope_score([], "a", LABELS, energy=1.5, similarity_weight=0.0) == 1.5
    assert scope_score([nb("a", 0.5)], "a", LABELS, energy=1.5, similarity_weight=2.0) == (
        pytest.approx(1.5 + 2 * math.log(0.5))
    )
    with pytest.raises(ValueError):
        Policy(scope_similarity_weight=-1.0)


def test_the_model_weight_keeps_the_cascades_own_labels_from_outvoting_people() -> None:
    neighbours = [nb("a", 0.9), nb("a", 0.9), nb("b", 0.8, "human")]
    as_before = neighbour_vote(neighbours, LABELS, temperature=0.05, human_weight=2.0)
    people = neighbour_vote(
        neighbours, LABELS, temperature=0.05, human_weight=2.0, model_weight=0.0
    )
    assert as_before is not None and as_before.argmax() == LABELS.index["a"]
    assert people is not None and people[LABELS.index["b"]] == 1.0
    only_models = [nb("a", 0.9)]
    assert (
        neighbour_vote(only_models, LABELS, temperature=0.05, human_weight=2.0, model_weight=0.0)
        is None
    )
    assert scope_score(neighbours, "b", LABELS) == pytest.approx(0.8)
    assert scope_score(neighbours, "b", LABELS, 0.5) == pytest.approx(0.4)
    assert scope_score(neighbours, "a", LABELS) == pytest.approx(0.9)
    assert scope_score(neighbours, "a", LABELS, model_weight=0.0) == 0.0  # people's only
    assert scope_score(only_models, "a", LABELS, model_weight=0.0) is None
    assert scope_score(neighbours, "c", LABELS) == 0.0 and scope_score([], "a", LABELS) is None
