"""The worker's models, assembled outside the worker for `triage tune` and `triage eval`.

Loads the adapter and the embedder through `models.assembly`, as `worker.resources` does (same
device, batching and merged adapter), and gives the first pass a ticket index: an in-memory one
built from a labelled file (reproducible, and a held-out ticket can be kept out of it), or the
configured one the worker uses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.assembly import (
    classifier_models,
    index_search,
    load_classifier,
    load_embedder,
    open_index,
)
from models.cascade import POLICY_FILE, Policy, Search, load_policy, policy_from_settings
from models.classifier import Classifier, read_meta
from models.data import LabelledText, read_labelled
from models.embedder import Embedder
from models.evaluation import CONFIGS, FRONTIER_CONFIGS, ConfigRun, Harness, cached
from models.frontier import build_frontier_client
from models.frontier.prompt import build_prompt
from models.index import SNIPPET_CHARS, IndexedTicket, TicketIndex
from models.report import Report
from models.settings import ModelSettings
from models.training import HELDOUT_FILE
from models.tuning import TuneReport, TuneTarget, tune, tuning_ticket
from producer.errors import ModelError
from producer.labelset import LabelSet
from producer.schemas import Neighbour, Ticket

log = logging.getLogger(__name__)
#: Rough characters per token of English text, to price a prompt that was not sent.
CHARS_PER_TOKEN = 4.0
#: Output tokens of one forced tool call (a label and a confidence).
TOOL_CALL_TOKENS = 40


@dataclass
class Loaded:
    classifier: Classifier
    embedder: Embedder
    index: TicketIndex
    search: Search
    policy: Policy


def load(
    adapter_dir: Path,
    settings: ModelSettings,
    index_data: Sequence[LabelledText] | None,
    *,
    tuning: Sequence[LabelledText] = (),
) -> Loaded:
    """The adapter, embedder, index and policy; the index from `index_data` when given.

    `tuning` tickets are indexed under their tuning ids (`tuning_ticket`), each in place of its
    copy in `index_data`: a tuning ticket's search leaves itself out and sees every other
    labelled ticket, as a served ticket sees the whole index. (Left out of the index, the vote
    was weaker in tuning than in serving, and thresholds tuned on it let more through when
    served: on Banking77, 77.5% coverage tuned, 79.3% at a lower precision on the test set.)
    """
    clf = load_classifier(adapter_dir, settings)
    embedder = load_embedder(settings)
    task = clf.labels.task
    if index_data is None:  # the worker's own index (local mode: the worker must not be running)
        index = open_index(settings)
    else:
        index = labelled_index(task, embedder, index_data, tuning)
    return Loaded(
        clf, embedder, index, index_search(index, task), load_policy(adapter_dir, settings)
    )


def labelled_index(
    task: str,
    embedder: Embedder,
    index_data: Sequence[LabelledText],
    tuning: Sequence[LabelledText] = (),
) -> TicketIndex:
    """An in-memory index (this run only) of `index_data` and the `tuning` tickets (see `load`)."""
    index = TicketIndex()
    skip = {ex.text for ex in tuning}
    rows = [
        IndexedTicket(f"row-{i}", "index-data", r.label, r.text, "human")
        for i, r in enumerate(index_data)
        if r.text not in skip
    ]
    rows += [
        IndexedTicket(t.id, t.source, ex.label, ex.text, "human")
        for t, ex in ((tuning_ticket(i, ex.text), ex) for i, ex in enumerate(tuning))
    ]
    for start in range(0, len(rows), 512):
        chunk = rows[start : start + 512]
        index.upsert(task, chunk, embedder.embed([r.text for r in chunk]))
    log.info(
        "indexed %d labelled tickets%s",
        len(rows),
        f" ({len(tuning)} tuning tickets each left out of its own search)" if tuning else "",
    )
    return index


def run_tune(
    adapter_dir: Path,
    settings: ModelSettings,
    index_data: Sequence[LabelledText] | None,
    target: TuneTarget,
    held_out: Sequence[LabelledText] | None = None,
) -> TuneReport:
    """Tune on held-out tickets and write ``policy.json`` next to the adapter.

    Default: the held-out split `triage train` saved beside the adapter (never trained on).
    """
    if held_out is None:
        path = adapter_dir / HELDOUT_FILE
        if not path.is_file():
            raise ModelError(
                f"{path} is missing (adapter trained before held-out splits were saved); "
                "give held-out tickets with --held-out, or retrain with `triage train`"
            )
        held_out = read_labelled(path)
    with ExitStack() as stack:
        m = load(adapter_dir, settings, index_data, tuning=held_out)
        stack.callback(m.index.close)
        served = classifier_models(m.classifier)
        report = tune(
            held_out,
            task=replace(served, predict_proba=cached(served.predict_proba)),
            embed=cached(m.embedder.embed),
            search=_cached_search(m.search),
            base=policy_from_settings(settings),
            target=target,
        )
        report.calibration = calibration_figures(m.classifier, held_out)
    report.policy.save(adapter_dir / POLICY_FILE, report.summary())
    return report


def run_eval(
    adapter_dir: Path,
    settings: ModelSettings,
    examples: Sequence[LabelledText],
    index_data: Sequence[LabelledText] | None,
    *,
    configs: Sequence[str] = CONFIGS,
    frontier_limit: int | None = 200,
    volume: int | None = None,
) -> Report:
    """Every configuration over `examples`, with the worker's code and the tuned policy."""
    frontier = build_frontier_client(settings) if settings.frontier_enabled else None
    with ExitStack() as stack:
        m = load(adapter_dir, settings, index_data)
        stack.callback(m.index.close)
        if frontier is not None:
            stack.callback(frontier.close)
        labels = m.classifier.labels
        tuning = _tuning(adapter_dir)
        harness = Harness(
            labels=labels,
            classifier=classifier_models(m.classifier),
            embed=m.embedder.embed,
            search=m.search,
            policy=m.policy,
            frontier=frontier,
            few_shot=_few_shot(index_data or [], settings.frontier_examples),
            frontier_examples=settings.frontier_examples,
            frontier_concurrency=settings.frontier_concurrency,
            batch_size=settings.batch_size,
            classifier_alone_threshold=tuning.get("classifier_alone", {}).get("classifier"),
            retrieval_alone_threshold=tuning.get("retrieval_alone", {}).get("retrieval"),
        )
        runs: dict[str, ConfigRun] = {}
        for name in configs:
            sample = examples
            if name in FRONTIER_CONFIGS and frontier_limit and len(examples) > frontier_limit:
                # Frontier calls cost money and seconds each: a spread sample is enough.
                sample = examples[:: len(examples) // frontier_limit][:frontier_limit]
            log.info("evaluating %s on %d tickets", name, len(sample))
            runs[name] = harness.run(name, sample)
    meta = read_meta(adapter_dir)
    train_s = float(meta.get("train_time_s") or 0.0)
    return Report(
        labels=labels,
        runs=runs,
        usd_per_hour=settings.gpu_usd_per_hour,
        frontier_usd_per_ticket_estimate=estimate_frontier_cost(labels, examples, settings),
        training_cost_usd=train_s / 3600.0 * settings.gpu_usd_per_hour if train_s else None,
        volume=volume,
        meta={
            "adapter": m.classifier.version,
            "base_model": m.classifier.base_model,
            "tickets": len(examples),
            "policy": m.policy.model_dump(),
        },
    )


def calibration_figures(clf: Classifier, held_out: Sequence[LabelledText]) -> dict[str, float]:
    """ECE of the held-out tickets: raw, with the adapter's temperature, and isotonic (CV)."""
    from models import calibration

    logits = clf.predict_logits([ex.text for ex in held_out])
    y = np.array([clf.labels.index[ex.label] for ex in held_out])
    return {
        "temperature": clf.temperature,
        "ece_raw": calibration.expected_calibration_error(calibration.softmax(logits), y),
        "ece_temperature": calibration.expected_calibration_error(
            calibration.softmax(logits / clf.temperature), y
        ),
        "ece_isotonic_cv": calibration.isotonic_cv_ece(logits / clf.temperature, y),
    }


def estimate_frontier_cost(
    labels: LabelSet, examples: Sequence[LabelledText], settings: ModelSettings
) -> float:
    """Dollars per ticket of a frontier call, from the prompt's size and the price table."""
    sample = examples[:50] or [LabelledText("", labels.names[0])]
    chars = [
        len((p := build_prompt(Ticket(id="x", body=ex.text), labels, [])).system) + len(p.user)
        for ex in sample
    ]
    input_tokens = float(np.mean(chars)) / CHARS_PER_TOKEN
    return (
        input_tokens * settings.frontier_input_usd_per_mtok
        + TOOL_CALL_TOKENS * settings.frontier_output_usd_per_mtok
    ) / 1e6


def _tuning(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / POLICY_FILE
    if not path.is_file():
        return {}
    tuning = json.loads(path.read_text(encoding="utf-8")).get("tuning", {})
    return tuning if isinstance(tuning, dict) else {}


def _few_shot(rows: Sequence[LabelledText], n: int) -> list[Neighbour]:
    """`n` fixed examples of different labels: the prompt-only configuration's few shots."""
    seen: dict[str, LabelledText] = {}
    for row in rows:
        seen.setdefault(row.label, row)
        if len(seen) >= n:
            break
    return [
        Neighbour(
            ticket_id=f"shot-{i}",
            source="few-shot",
            label=r.label,
            score=0.0,
            set_by="human",
            snippet=r.text[:SNIPPET_CHARS],
        )
        for i, r in enumerate(seen.values())
    ]


def _cached_search(search: Search) -> Search:
    """Neighbours by ticket: tuning asks for the same tickets' neighbours under each policy."""
    memo: dict[tuple[tuple[str, str], int], list[Neighbour]] = {}

    def call(
        vectors: np.ndarray, k: int, exclude: Sequence[tuple[str, str]]
    ) -> list[list[Neighbour]]:
        todo = [i for i, key in enumerate(exclude) if (key, k) not in memo]
        if todo:
            found = search(vectors[todo], k, [exclude[i] for i in todo])
            memo.update(((exclude[i], k), f) for i, f in zip(todo, found, strict=True))
        return [memo[(key, k)] for key in exclude]

    return call
