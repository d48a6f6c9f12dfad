"""The cascade policy: plain code that the worker, tuning and the evaluation all run.

The rule lives here once: `mix` blends the classifier with the neighbour vote, `decide` says who
labels a ticket (`decide_all` is the same rule over arrays, for tuning's threshold search).
`first_pass` labels a batch with one classifier pass, one embedder pass and one Qdrant query
batch; what it is unsure of comes back marked for escalation. A ticket unlike every label (its
`scope_score` under the policy's `scope_threshold`) is marked out of scope: it goes to human
review, not to the frontier, whose answer must be one of the labels. `escalate` asks the frontier
about one ticket, with its neighbours as examples, and falls back to human review.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from models.frontier import FrontierClient, SpendBudget
from models.settings import ModelSettings
from models.vectors import PackedVector, pack
from models.vote import SIMILARITY_WEIGHT, neighbour_vote, scope_score
from producer.errors import BudgetExceeded, FrontierRefused, ModelError
from producer.labelset import LabelSet
from producer.schemas import DecidedBy, Neighbour, StageTrace, Status, Ticket, TriageResult

log = logging.getLogger(__name__)

#: Tuned policy, written by `triage tune` next to the adapter; it wins over the settings.
POLICY_FILE = "policy.json"

#: Why a ticket went to human review when there is no frontier to ask.
NO_FRONTIER = "no frontier API configured (TRIAGE_FRONTIER_PROVIDER=none)"
#: A threshold no confidence reaches: switches a stage off.
NEVER = 1.01
#: How many of the deciding distribution's best labels the cascade stage keeps (``detail["top"]``,
#: which the ledger stores as the desk's suggestions: `producer.ledger.facts.suggestions_of`).
TOP_LABELS = 3


class Policy(BaseModel):
    """Thresholds and mixing of the cascade (from settings, or tuned next to the adapter)."""

    classifier_threshold: float = 0.9
    retrieval_threshold: float = 0.8
    classifier_weight: float = 0.65
    disagreement_margin: float = 0.6
    neighbours: int = 10
    vote_temperature: float = 0.05
    human_weight: float = 2.0
    #: A model-written neighbour's weight in the vote (a person's counts `human_weight`): under
    #: 1, the cascade leans less on its own earlier labels (`bench.second_pass` measures it).
    model_weight: float = 1.0
    #: Out of scope: a ticket whose `scope_score` is under this goes to human review; None
    #: (policies tuned before it existed) flags nothing. `triage tune` sets it.
    scope_threshold: float | None = None
    #: Which `scope_score` the threshold is on: the classifier's ``energy`` with the nearest
    #: same-label similarity (what `triage tune` chooses when the classifier gives logits), or
    #: its ``confidence`` times that similarity (policies tuned before, adapter sets).
    scope_kind: Literal["confidence", "energy"] = "confidence"
    #: With ``energy``: how much the log of the nearest same-label similarity adds to it
    #: (`models.vote.scope_score`). Policies tuned before this field used 5; `triage tune`
    #: writes its `--scope-similarity-weight`, 0 by default (see `models.tuning.TuneTarget`).
    scope_similarity_weight: float = Field(default=SIMILARITY_WEIGHT, ge=0.0)

    def deciding(self, *, classifier: float = NEVER, retrieval: float = NEVER) -> Policy:
        """This policy with these thresholds: a stage given none never decides."""
        return self.model_copy(
            update={"classifier_threshold": classifier, "retrieval_threshold": retrieval}
        )

    def save(self, path: Path, tuning: dict[str, Any] | None = None) -> None:
        """Write the policy as JSON; `tuning` (how it was chosen) rides along for people."""
        body = {**self.model_dump(), "tuning": tuning or {}}
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path} is not a valid policy ({exc}); rerun `triage tune`") from exc


class FirstPass(BaseModel):
    """What the first pass concluded for one ticket; JSON-safe, it travels to `escalate`."""

    ticket: Ticket
    label: str
    confidence: float
    decided_by: DecidedBy | None  # None: unsure, escalate
    neighbours: list[Neighbour] = Field(default_factory=list)
    trace: list[StageTrace] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    vector: PackedVector = ""  # the ticket's embedding, for the index (`models.vectors`)
    #: Why an unsure ticket is unlike every label (`out_of_scope_reason`); None: in scope.
    out_of_scope: str | None = None

    @property
    def needs_escalation(self) -> bool:
        return self.decided_by is None

    def result(self, *, enqueued_at: str | None = None) -> TriageResult:
        assert self.decided_by is not None, "an unsure first pass has no result; escalate it"
        return _result(
            self,
            self.label,
            self.confidence,
            self.decided_by,
            "labelled",
            None,
            self.trace,
            enqueued_at,
        )


Predict = Callable[[Sequence[str]], np.ndarray]
Embed = Callable[[Sequence[str]], np.ndarray]
#: (vectors, k, (source, id) of each ticket) -> the k nearest labelled tickets of each vector
Search = Callable[[np.ndarray, int, Sequence[tuple[str, str]]], list[list[Neighbour]]]


@dataclass(frozen=True)
class TaskModels:
    """What the first pass needs for one label task."""

    labels: LabelSet
    predict_proba: Predict
    version: str
    #: Calibrated logits (logits / temperature; their softmax is `predict_proba`), when the
    #: classifier gives them: the first pass then reads these alone, and the energy with them.
    predict_logits: Predict | None = None
    #: Its passes run on one thread each (ONNX on the CPU), so several may run at once.
    side_by_side: bool = False


def mix(
    classifier_probs: np.ndarray, vote: np.ndarray | None, classifier_weight: float
) -> np.ndarray:
    """Convex mix of the two distributions; the classifier alone when there is no vote."""
    if vote is None:
        return classifier_probs
    return classifier_weight * classifier_probs + (1.0 - classifier_weight) * vote


def decide(
    clf_conf: float, mix_conf: float, policy: Policy, scope: float | None = None
) -> DecidedBy | None:
    """Who labels a ticket: nobody when it is out of scope, else the classifier alone when sure
    enough, else the mix, else nobody (None: escalate). `clf_conf` and `mix_conf` are the top
    probabilities of each, `scope` the ticket's `scope_score` (None: no neighbours to judge by).
    """
    if in_scope(scope, policy.scope_threshold) is False:
        return None
    if clf_conf >= policy.classifier_threshold:
        return "classifier"
    if mix_conf >= policy.retrieval_threshold:
        return "retrieval"
    return None


def decide_all(
    clf_conf: np.ndarray,
    mix_conf: np.ndarray,
    classifier_threshold: np.ndarray | float,
    retrieval_threshold: np.ndarray | float,
    scope: np.ndarray | None = None,
    scope_threshold: np.ndarray | float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`decide` over arrays that broadcast together (tuning tries grids of thresholds at once).

    `scope` holds NaN where a ticket had no score. Returns two masks: decided by the
    classifier, decided by the mix; where neither, escalate.
    """
    ok = np.asarray(True)
    if scope is not None and scope_threshold is not None:
        ok = ~(scope < scope_threshold)  # NaN compares False: no score, not flagged
    by_classifier = ok & (clf_conf >= classifier_threshold)
    by_mix = ok & ~by_classifier & (mix_conf >= retrieval_threshold)
    return by_classifier, by_mix


def in_scope(scope: float | None, threshold: float | None) -> bool | None:
    """False when the score is under the threshold; None when there is nothing to compare."""
    if scope is None or threshold is None or math.isnan(scope):
        return None
    return not scope < threshold


def first_pass(
    tickets: Sequence[Ticket],
    *,
    task: TaskModels,
    embed: Embed,
    search: Search,
    policy: Policy,
    versions: dict[str, str] | None = None,
    models_turn: AbstractContextManager[Any] | None = None,
) -> list[FirstPass]:
    """Label a batch of tickets of one task: one pass per model, one query batch.

    `models_turn` is held around the model passes alone (a worker's turn on its cores): the
    search, the vote and the results, Python under the GIL, then run beside the next batch's
    passes rather than ahead of them.
    """
    if not tickets:
        return []
    texts = [t.text for t in tickets]
    n = len(tickets)

    with models_turn or nullcontext():
        started = time.perf_counter()
        probs, energies = classify(task, texts)
        clf_ms = (time.perf_counter() - started) * 1000.0
        started = time.perf_counter()
        vectors = np.asarray(embed(texts))
        embed_s = time.perf_counter() - started

    started = time.perf_counter()
    found = search(vectors, policy.neighbours, [(t.source, t.id) for t in tickets])
    ret_ms = (time.perf_counter() - started + embed_s) * 1000.0

    names = task.labels.names
    by_energy = policy.scope_kind == "energy"
    out: list[FirstPass] = []
    for i, ticket in enumerate(tickets):
        clf = probs[i]
        vote = neighbour_vote(
            found[i],
            task.labels,
            temperature=policy.vote_temperature,
            human_weight=policy.human_weight,
            model_weight=policy.model_weight,
        )
        mixed = mix(clf, vote, policy.classifier_weight)
        clf_top, mixed_top = int(clf.argmax()), int(mixed.argmax())
        energy = float(energies[i]) if by_energy and energies is not None else None
        # An energy threshold and a classifier without logits: no check (None), rather than a
        # confidence compared with an energy.
        scope = (
            None
            if by_energy and energy is None
            else scope_score(
                found[i],
                names[clf_top],
                task.labels,
                float(clf[clf_top]),
                model_weight=policy.model_weight,
                energy=energy,
                similarity_weight=policy.scope_similarity_weight,
            )
        )
        trace = [
            StageTrace(
                stage="classifier",
                label=names[clf_top],
                confidence=float(clf[clf_top]),
                latency_ms=clf_ms / n,
                detail={"batch": n, "batch_ms": round(clf_ms, 2)},
            ),
            StageTrace(
                stage="retrieval",
                label=None if vote is None else names[int(vote.argmax())],
                confidence=0.0 if vote is None else float(vote.max()),
                latency_ms=ret_ms / n,
                detail={"neighbours": len(found[i]), "batch_ms": round(ret_ms, 2)},
            ),
        ]
        decided_by = decide(float(clf[clf_top]), float(mixed[mixed_top]), policy, scope)
        # The classifier's label when it decides; else the mix's, decided or suggested.
        top, probs_of = (clf_top, clf) if decided_by == "classifier" else (mixed_top, mixed)
        label, confidence = names[top], float(probs_of[top])
        unlike = (
            out_of_scope_reason(names[clf_top], scope, policy)
            if in_scope(scope, policy.scope_threshold) is False
            else None
        )
        detail: dict[str, Any] = {
            "decision": "out_of_scope" if unlike else decided_by or "escalate",
            "top": top_labels(probs_of, names),
        }
        if scope is not None:
            detail["scope"] = scope
        trace.append(
            StageTrace(
                stage="cascade", label=label, confidence=confidence, latency_ms=0.0, detail=detail
            )
        )
        out.append(
            FirstPass(
                ticket=ticket,
                label=label,
                confidence=confidence,
                decided_by=decided_by,
                neighbours=found[i],
                trace=trace,
                versions={"adapter": task.version, **(versions or {})},
                vector=pack(vectors[i]),
                out_of_scope=unlike,
            )
        )
    return out


def out_of_scope_reason(label: str, scope: float | None, policy: Policy) -> str:
    """Why a ticket went to review as out of scope (the result's reason, for people)."""
    if policy.scope_kind == "confidence":
        score = (
            f"the classifier's confidence in {label!r} times the similarity of the nearest "
            f"{label!r} ticket"
        )
    elif policy.scope_similarity_weight == 0.0:
        score = "the classifier's energy: no label's logit is large"
    else:
        score = f"the classifier's energy, less the distance to the nearest {label!r} ticket"
    return (
        f"out of scope: {scope:.2f} ({score}) is under the tuned {policy.scope_threshold:.2f}; "
        "the ticket may be of a kind the label set does not know"
    )


def classify(task: TaskModels, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """The classifier's probabilities of `texts` and, when it gives logits, their energies
    (log-sum-exp of the calibrated logits), from one pass."""
    if task.predict_logits is None:
        return np.asarray(task.predict_proba(texts)), None
    logits = np.asarray(task.predict_logits(texts), dtype=np.float64)
    top = logits.max(axis=1, keepdims=True)
    exp = np.exp(logits - top)
    total = exp.sum(axis=1, keepdims=True)
    return (exp / total).astype(np.float32), (top + np.log(total))[:, 0]


def top_labels(
    probs: np.ndarray, names: Sequence[str], k: int = TOP_LABELS
) -> list[list[str | float]]:
    """The `k` most probable labels with their (calibrated) probabilities, best first, as
    ``[[label, confidence], ...]`` (JSON-safe: it travels in the trace)."""
    best = np.argsort(-probs, kind="stable")[:k]
    return [[names[int(i)], float(probs[i])] for i in best]


def escalate(
    first: FirstPass,
    *,
    labels: LabelSet,
    frontier: FrontierClient | None,
    budget: SpendBudget | None,
    policy: Policy,
    max_examples: int = 5,
    enqueued_at: str | None = None,
) -> TriageResult:
    """Ask the frontier about one unsure ticket; human review when that is not possible.

    `FrontierUnavailable` (retryable) propagates so the caller can retry with backoff and call
    `review_after_retries` after its last try. Everything else ends in a result.
    """
    if frontier is None or first.out_of_scope:
        # The frontier must answer with one of the labels: none is right out of scope.
        return review_without_frontier(first, enqueued_at=enqueued_at)
    try:
        if budget is not None:
            budget.check()
        started = time.perf_counter()
        answer = frontier.classify(first.ticket, labels, first.neighbours[:max_examples])
    except BudgetExceeded as exc:
        return give_up(first, f"frontier budget exceeded: {exc}", enqueued_at=enqueued_at)
    except FrontierRefused as exc:
        return give_up(first, f"frontier answer refused: {exc}", enqueued_at=enqueued_at)
    if budget is not None:
        budget.record(answer.cost_usd)
    confidence = answer.confidence if answer.confidence is not None else first.confidence
    step = StageTrace(
        stage="frontier",
        label=answer.label,
        confidence=confidence,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        cost_usd=answer.cost_usd,
        detail={
            "model": answer.model,
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens,
        },
    )
    trace = [*first.trace, step]
    if answer.label not in labels:  # the client checks too: never trust one check
        return _result(
            first,
            first.label,
            first.confidence,
            "frontier",
            "needs_review",
            f"frontier label {answer.label!r} is not in the label set",
            trace,
            enqueued_at,
        )
    if answer.label != first.label and first.confidence >= policy.disagreement_margin:
        return _result(
            first,
            answer.label,
            confidence,
            "frontier",
            "needs_review",
            f"frontier says {answer.label!r}, first pass {first.label!r} at {first.confidence:.2f}",
            trace,
            enqueued_at,
        )
    return _result(
        first, answer.label, confidence, "frontier", "labelled", None, trace, enqueued_at
    )


def review_without_frontier(first: FirstPass, *, enqueued_at: str | None = None) -> TriageResult:
    """An unsure ticket to human review because no frontier is configured, or it is out of scope
    (as `escalate` does: a worker that knows so can skip the escalate task)."""
    return give_up(first, first.out_of_scope or NO_FRONTIER, enqueued_at=enqueued_at)


def review_after_retries(
    first: FirstPass,
    error: BaseException,
    *,
    tries: int | None = None,
    enqueued_at: str | None = None,
) -> TriageResult:
    """An unsure ticket to human review once the frontier stayed unavailable through the
    retries (`tries`, when the caller counted them)."""
    after = f" after {tries} tries" if tries is not None else ""
    return give_up(first, f"frontier unavailable{after}: {error}", enqueued_at=enqueued_at)


def give_up(first: FirstPass, reason: str, *, enqueued_at: str | None = None) -> TriageResult:
    """Send the ticket to human review with the first pass's best guess as a suggestion."""
    log.info("ticket %s/%s needs review: %s", first.ticket.source, first.ticket.id, reason)
    by: DecidedBy = first.decided_by or ("retrieval" if first.neighbours else "classifier")
    return _result(
        first, first.label, first.confidence, by, "needs_review", reason, first.trace, enqueued_at
    )


def _result(
    first: FirstPass,
    label: str | None,
    confidence: float,
    decided_by: DecidedBy,
    status: Status,
    reason: str | None,
    trace: list[StageTrace],
    enqueued_at: str | None,
) -> TriageResult:
    t = first.ticket
    return TriageResult(
        ticket_id=t.id,
        source=t.source,
        task=t.task,
        revision=t.effective_revision,
        label=label,
        confidence=min(max(confidence, 0.0), 1.0),
        decided_by=decided_by,
        status=status,
        reason=reason,
        # The neighbours' ids, labels and scores, not their text: a result is stored and sent
        # to the source, and must not carry copies of other people's tickets (nor 20 of them
        # at 300 characters each, for every ticket). The frontier gets its examples' text from
        # the first pass.
        evidence=[n.model_copy(update={"snippet": ""}) for n in first.neighbours],
        trace=trace,
        versions=first.versions,
        enqueued_at=datetime.fromisoformat(enqueued_at) if enqueued_at else None,
    )


def load_policy(adapter_dir: Path, settings: ModelSettings) -> Policy:
    """The tuned policy next to the adapter when there is one, else the settings' values."""
    tuned = adapter_dir / POLICY_FILE
    if tuned.is_file():
        return Policy.load(tuned)
    return policy_from_settings(settings)


def policy_from_settings(settings: ModelSettings) -> Policy:
    return Policy(
        classifier_threshold=settings.classifier_threshold,
        retrieval_threshold=settings.retrieval_threshold,
        classifier_weight=settings.classifier_weight,
        disagreement_margin=settings.disagreement_margin,
        neighbours=settings.neighbours,
        vote_temperature=settings.vote_temperature,
        human_weight=settings.human_weight,
    )
