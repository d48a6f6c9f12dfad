"""The evaluation harness: one held-out set through each configuration, on the worker's code.

Every configuration runs `models.cascade.first_pass` and `escalate` (what the classify and
escalate tasks run), only without a queue; a configuration is a `Policy` and which models it may
use:

- ``frontier``: every ticket escalated, with a few fixed examples (prompt only, few-shot);
- ``frontier+rag``: every ticket escalated, with its nearest labelled tickets as examples;
- ``retrieval``: the neighbour vote alone (classifier weight 0);
- ``fine-tune``: the classifier alone (classifier weight 1, no retrieval);
- ``cascade``: the whole first pass with the tuned policy, unsure tickets escalated.

Labels can be left out (`leave_out`): the models then run as if they did not exist, and their
tickets stand in for tickets of a kind the label set does not know (`models.scores`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from models.cascade import (
    Embed,
    FirstPass,
    Policy,
    Search,
    TaskModels,
    escalate,
    first_pass,
    review_after_retries,
)
from models.data import LabelledText
from models.frontier import FrontierClient
from models.overlap import Overlaps
from models.progress import progress
from models.scores import summarise
from producer.errors import RetryableError
from producer.labelset import LabelSet
from producer.schemas import Neighbour, Ticket, TriageResult

CONFIGS = ("frontier", "frontier+rag", "retrieval", "fine-tune", "cascade")
FRONTIER_CONFIGS = frozenset({"frontier", "frontier+rag"})


@dataclass(frozen=True)
class Outcome:
    """One ticket through one configuration."""

    truth: str
    label: str | None
    confidence: float
    auto: bool  # labelled with no human in the loop
    escalated: bool  # the first pass was unsure
    latency_ms: float  # what this ticket waited: its batches' time plus its frontier call
    compute_ms: float  # model time attributed to this ticket (its share of each batch)
    cost_usd: float  # frontier spend


@dataclass
class ConfigRun:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: str | None = None

    def metrics(
        self, labels: LabelSet, usd_per_hour: float, unknown: Collection[str] = ()
    ) -> dict[str, Any]:
        """The figures of `models.scores.summarise` for this configuration."""
        return summarise(self.outcomes, labels, usd_per_hour, unknown)


@dataclass
class Harness:
    """What the configurations need; the callables are the worker's (or cached copies)."""

    labels: LabelSet
    classifier: TaskModels
    embed: Embed
    search: Search
    policy: Policy
    frontier: FrontierClient | None = None
    #: Fixed examples of the prompt-only ``frontier`` configuration.
    few_shot: Sequence[Neighbour] = ()
    frontier_examples: int = 5
    frontier_concurrency: int = 8
    batch_size: int = 64
    #: Thresholds of the single-model configurations (``fine-tune``, ``retrieval``).
    classifier_alone_threshold: float | None = None
    retrieval_alone_threshold: float | None = None
    #: Progress lines (a bar on a terminal) per batch of each configuration.
    progress: bool = True

    def run(self, name: str, examples: Sequence[LabelledText]) -> ConfigRun:
        """Run one configuration over `examples` (labels are only read to score)."""
        if name not in CONFIGS:
            raise ValueError(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}")
        tickets = [
            Ticket(id=f"eval-{i}", source="eval", body=ex.text, task=self.labels.task)
            for i, ex in enumerate(examples)
        ]
        truths = [ex.label for ex in examples]
        if isinstance(self.search, Overlaps):  # it leaves out copies of these tickets' texts
            self.search.know(tickets)
        if name in FRONTIER_CONFIGS:
            if self.frontier is None:
                return ConfigRun(name, skipped="no frontier configured (TRIAGE_FRONTIER_PROVIDER)")
            return ConfigRun(name, self._frontier_only(tickets, truths, rag=name == "frontier+rag"))
        return ConfigRun(name, self._first_pass_then_escalate(name, tickets, truths))

    def _first_pass_then_escalate(
        self, name: str, tickets: list[Ticket], truths: list[str]
    ) -> list[Outcome]:
        policy, task, embed, search = self._variant(name)
        firsts: list[FirstPass] = []
        with progress(name, len(tickets), enabled=self.progress) as step:
            for start in range(0, len(tickets), self.batch_size):
                firsts += first_pass(
                    tickets[start : start + self.batch_size],
                    task=task,
                    embed=embed,
                    search=search,
                    policy=policy,
                )
                step.advance(min(self.batch_size, len(tickets) - start))
        unsure = [fp for fp in firsts if fp.needs_escalation]
        escalated = dict(
            zip((id(fp) for fp in unsure), self._escalate_all(unsure, name), strict=True)
        )
        out = []
        for fp, truth in zip(firsts, truths, strict=True):
            batch_ms = sum(float(s.detail.get("batch_ms", 0.0)) for s in fp.trace)
            compute_ms = sum(s.latency_ms for s in fp.trace)
            result = escalated[id(fp)] if fp.needs_escalation else fp.result()
            out.append(_outcome(truth, result, batch_ms, compute_ms, fp.needs_escalation))
        return out

    def _variant(self, name: str) -> tuple[Policy, TaskModels, Embed, Search]:
        """The policy and models of a configuration; stages it does not use cost nothing."""
        if name == "cascade":
            return self.policy, self.classifier, self.embed, self.search
        if name == "fine-tune":
            threshold = self.classifier_alone_threshold or self.policy.classifier_threshold
            policy = self.policy.model_copy(update={"classifier_weight": 1.0})
            return policy.deciding(classifier=threshold), self.classifier, _no_embed, _no_search
        threshold = self.retrieval_alone_threshold or self.policy.retrieval_threshold
        # No out-of-scope check: its score reads the classifier, which this one lacks.
        policy = self.policy.model_copy(update={"classifier_weight": 0.0, "scope_threshold": None})
        policy = policy.deciding(retrieval=threshold)
        n = len(self.labels)
        uniform = TaskModels(
            labels=self.labels,
            predict_proba=lambda texts: np.full((len(texts), n), 1.0 / n),
            version="none",
        )
        return policy, uniform, self.embed, self.search

    def _frontier_only(self, tickets: list[Ticket], truths: list[str], rag: bool) -> list[Outcome]:
        firsts: list[tuple[FirstPass, float]] = []
        name = "frontier+rag" if rag else "frontier"
        for start in range(0, len(tickets), self.batch_size):
            batch = tickets[start : start + self.batch_size]
            started = time.perf_counter()
            if rag:
                found = self.search(
                    self.embed([t.text for t in batch]),
                    self.frontier_examples,
                    [(t.source, t.id) for t in batch],
                )
            else:
                found = [list(self.few_shot) for _ in batch]
            share_ms = (time.perf_counter() - started) * 1000.0 / len(batch)
            for ticket, neighbours in zip(batch, found, strict=True):
                # Nothing decided and no confidence: `escalate` takes the frontier's word.
                first = FirstPass(
                    ticket=ticket,
                    label=self.labels.names[0],
                    confidence=0.0,
                    decided_by=None,
                    neighbours=neighbours,
                )
                firsts.append((first, share_ms))
        results = self._escalate_all([fp for fp, _ in firsts], name)
        return [
            _outcome(truth, result, share_ms, share_ms, True)
            for (_, share_ms), result, truth in zip(firsts, results, truths, strict=True)
        ]

    def _escalate_all(self, firsts: Sequence[FirstPass], name: str) -> list[TriageResult]:
        """`escalate` each unsure ticket, concurrently as the escalate queue would."""
        if not firsts:
            return []

        def one(fp: FirstPass) -> TriageResult:
            try:
                return escalate(
                    fp,
                    labels=self.labels,
                    frontier=self.frontier,
                    budget=None,
                    policy=self.policy,
                    max_examples=self.frontier_examples,
                )
            except RetryableError as exc:
                # The client already retried with backoff; the worker would now give up too.
                return review_after_retries(fp, exc)

        if self.frontier is None:  # each goes to review at once: nothing to wait for
            return [one(fp) for fp in firsts]
        results = []
        with (
            progress(f"{name}: frontier", len(firsts), enabled=self.progress) as step,
            ThreadPoolExecutor(max_workers=self.frontier_concurrency) as pool,
        ):
            for result in pool.map(one, firsts):
                results.append(result)
                step.advance()
        return results


def cached_task(task: TaskModels) -> TaskModels:
    """`task` with its classifier memoised by text (probabilities and logits alike)."""
    logits = task.predict_logits
    return replace(
        task,
        predict_proba=cached(task.predict_proba),
        predict_logits=None if logits is None else cached(logits),
    )


def cached(
    fn: Callable[[Sequence[str]], np.ndarray],
) -> Callable[[Sequence[str]], np.ndarray]:
    """Memoise a batch function by text: tuning runs the same tickets under many policies."""
    memo: dict[str, np.ndarray] = {}

    def call(texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        if todo:
            memo.update(zip(todo, np.asarray(fn(todo)), strict=True))
        return np.stack([memo[t] for t in texts]) if texts else np.asarray(fn([]))

    return call


def _outcome(
    truth: str, result: TriageResult, batch_ms: float, compute_ms: float, escalated: bool
) -> Outcome:
    frontier = [s for s in result.trace if s.stage == "frontier"]
    return Outcome(
        truth=truth,
        label=result.label,
        confidence=result.confidence,
        auto=result.status == "labelled",
        escalated=escalated,
        latency_ms=batch_ms + sum(s.latency_ms for s in frontier),
        compute_ms=compute_ms,
        cost_usd=sum(s.cost_usd for s in result.trace),
    )


def _no_embed(texts: Sequence[str]) -> np.ndarray:
    return np.zeros((len(texts), 1), dtype=np.float32)


def _no_search(
    vectors: np.ndarray, k: int, exclude: Sequence[tuple[str, str]]
) -> list[list[Neighbour]]:
    return [[] for _ in range(len(vectors))]


def choose_unknown(labels: LabelSet, spec: str, seed: int = 0) -> list[str]:
    """The labels `triage eval --unknown-labels` leaves out: names (``a,b``), or a share of the
    label set (``0.1``) drawn with `seed`, sorted."""
    spec = spec.strip()
    try:
        share = float(spec)
    except ValueError:
        names = sorted({n.strip() for n in spec.split(",") if n.strip()})
        missing = [n for n in names if n not in labels]
        if missing:
            raise ValueError(
                f"--unknown-labels: {', '.join(missing)} not in the label set {labels.task!r}"
            ) from None
    else:
        if not 0.0 < share < 1.0:
            raise ValueError(f"--unknown-labels {spec}: a share must be between 0 and 1")
        n = max(1, round(share * len(labels)))
        rng = np.random.default_rng(seed)
        names = sorted(str(x) for x in rng.choice(labels.names, size=n, replace=False))
    if len(labels) - len(names) < 2:
        raise ValueError(f"--unknown-labels {spec} leaves fewer than two labels")
    return names
