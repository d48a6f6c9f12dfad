"""The worker's models, assembled outside the worker for `triage tune` and `triage eval`.

Loads the adapter and the embedder through `models.assembly`, as `worker.resources` does (same
device, batching and merged adapter), and gives the first pass a ticket index: an in-memory one
built from a labelled file (reproducible), or the configured one the worker uses. Either way the
search is `models.overlap.Overlaps`: a scored ticket never finds itself or a copy of its text
among its neighbours, and the count of what it left out goes into the reports.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models import novelty
from models.assembly import (
    classifier_models,
    index_search,
    load_classifier,
    load_embedder,
    open_index,
)
from models.cascade import POLICY_FILE, Policy, Search, load_policy, policy_from_settings
from models.classifier import Classifier, read_meta
from models.data import LabelledText
from models.embedder import Embedder
from models.evaluation import CONFIGS, FRONTIER_CONFIGS, ConfigRun, Harness, cached, cached_task
from models.frontier import build_frontier_client
from models.frontier.prompt import build_prompt
from models.index import SNIPPET_CHARS, IndexedTicket, TicketIndex
from models.overlap import Overlaps, normalise
from models.progress import progress
from models.report import Report
from models.settings import ModelSettings
from models.training import HELDOUT_FILE, read_heldout
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
    #: The first pass's search: `overlaps`, which leaves out each known ticket's own point and
    #: copies of its text, and counts them (`Overlaps.counts`).
    search: Search
    policy: Policy
    overlaps: Overlaps


def load(
    adapter_dir: Path,
    settings: ModelSettings,
    index_data: Sequence[LabelledText] | None,
    *,
    tuning: Sequence[LabelledText] = (),
    hidden_labels: Collection[str] = (),
) -> Loaded:
    """The adapter, embedder, index and policy; the index from `index_data` when given.

    `tuning` tickets are indexed under their tuning ids (`tuning_ticket`), each in place of its
    copy in `index_data`: a tuning ticket's search leaves itself (and any copy of its text) out
    and sees every other labelled ticket, as a served ticket sees the whole index. (Left out of
    the index, the vote was weaker in tuning than in serving, and thresholds tuned on it let
    more through when served: on Banking77, 77.5% coverage tuned, 79.3% at a lower precision
    on the test set.) Tickets of `hidden_labels` are never neighbours (nor indexed).
    """
    clf = load_classifier(adapter_dir, settings)
    embedder = load_embedder(settings)
    task = clf.labels.task
    if index_data is None:  # the worker's own index (local mode: the worker must not be running)
        index = open_index(settings)
    else:
        kept = [r for r in index_data if r.label not in hidden_labels]
        index = labelled_index(task, embedder, kept, tuning)
    overlaps = Overlaps(index_search(index, task), hidden_labels)
    overlaps.know(tuning_ticket(i, ex.text) for i, ex in enumerate(tuning))
    return Loaded(clf, embedder, index, overlaps, load_policy(adapter_dir, settings), overlaps)


def labelled_index(
    task: str,
    embedder: Embedder,
    index_data: Sequence[LabelledText],
    tuning: Sequence[LabelledText] = (),
) -> TicketIndex:
    """An in-memory index (this run only) of `index_data` and the `tuning` tickets (see `load`)."""
    index = TicketIndex()
    skip = {normalise(ex.text) for ex in tuning}
    rows = [
        IndexedTicket(f"row-{i}", "index-data", r.label, r.text, "human")
        for i, r in enumerate(index_data)
        if normalise(r.text) not in skip
    ]
    rows += [
        IndexedTicket(t.id, t.source, ex.label, ex.text, "human")
        for t, ex in ((tuning_ticket(i, ex.text), ex) for i, ex in enumerate(tuning))
    ]
    with progress("indexing", len(rows)) as step:
        # Small chunks: a progress line at least every few seconds even on a busy machine.
        for start in range(0, len(rows), 128):
            chunk = rows[start : start + 128]
            index.upsert(task, chunk, embedder.embed([r.text for r in chunk]))
            step.advance(len(chunk))
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
        held_out = read_heldout(adapter_dir)  # its own keys, whatever training's columns
    with ExitStack() as stack:
        m = load(adapter_dir, settings, index_data, tuning=held_out)
        stack.callback(m.index.close)
        served = classifier_models(m.classifier)
        report = tune(
            held_out,
            task=cached_task(served),
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
    unknown_labels: Collection[str] = (),
) -> Report:
    """Every configuration over `examples`, with the worker's code and the tuned policy.

    With `unknown_labels`, the models and the index run as if those labels did not exist
    (`models.novelty.leave_labels_out`); their tickets stay among `examples` as tickets of a
    kind the label set does not know, and the report says how many were auto-labelled.
    """
    frontier = build_frontier_client(settings) if settings.frontier_enabled else None
    hidden = frozenset(unknown_labels)
    with ExitStack() as stack:
        m = load(adapter_dir, settings, index_data, hidden_labels=hidden)
        stack.callback(m.index.close)
        if frontier is not None:
            stack.callback(frontier.close)
        task = classifier_models(m.classifier)
        if hidden:  # the search (`m.overlaps`) already leaves their tickets out
            task, _ = novelty.leave_labels_out(task, m.search, hidden)
        labels = task.labels
        tuning = _tuning(adapter_dir)
        harness = Harness(
            labels=labels,
            classifier=task,
            embed=m.embedder.embed,
            search=m.search,
            policy=m.policy,
            frontier=frontier,
            few_shot=_few_shot(
                [r for r in index_data or [] if r.label not in hidden], settings.frontier_examples
            ),
            frontier_examples=settings.frontier_examples,
            frontier_concurrency=settings.frontier_concurrency,
            batch_size=settings.batch_size,
            classifier_alone_threshold=tuning.get("classifier_alone", {}).get("classifier"),
            retrieval_alone_threshold=tuning.get("retrieval_alone", {}).get("retrieval"),
        )
        runs: dict[str, ConfigRun] = {}
        wall_s: dict[str, float] = {}
        for n, name in enumerate(configs, 1):
            if name in FRONTIER_CONFIGS and frontier is None:
                runs[name] = harness.run(name, [])  # skipped, with its reason (the CLI said so)
                continue
            sample = examples
            if name in FRONTIER_CONFIGS and frontier_limit and len(examples) > frontier_limit:
                # Frontier calls cost money and seconds each: a spread sample is enough.
                sample = examples[:: len(examples) // frontier_limit][:frontier_limit]
            log.info("configuration %d of %d: %s on %d tickets", n, len(configs), name, len(sample))
            started = time.monotonic()
            runs[name] = harness.run(name, sample)
            wall_s[name] = round(time.monotonic() - started, 1)
    meta = read_meta(adapter_dir)
    train_s = float(meta.get("train_time_s") or 0.0)
    return Report(
        labels=labels,
        runs=runs,
        usd_per_hour=settings.gpu_usd_per_hour,
        frontier_usd_per_ticket_estimate=estimate_frontier_cost(labels, examples, settings),
        training_cost_usd=train_s / 3600.0 * settings.gpu_usd_per_hour if train_s else None,
        volume=volume,
        unknown_labels=tuple(sorted(hidden)),
        tuned=operating_point(tuning),
        meta={
            "adapter": m.classifier.version,
            "base_model": m.classifier.base_model,
            "tickets": len(examples),
            "index": describe_index(settings, index_data, hidden),
            "overlaps_excluded": m.overlaps.counts(),
            "wall_s": wall_s,
            "policy": m.policy.model_dump(),
        },
    )


def describe_index(
    settings: ModelSettings, index_data: Sequence[LabelledText] | None, hidden: Collection[str]
) -> str:
    """Which index the neighbours came from, for the report."""
    if index_data is None:
        where = settings.qdrant_url or str(settings.qdrant_path)
        return f"the worker's index ({where}): it may hold the evaluated tickets themselves"
    kept = sum(r.label not in hidden for r in index_data)
    return f"in-memory, {kept:,} labelled tickets (--index-data)"


def operating_point(tuning: dict[str, Any]) -> dict[str, Any] | None:
    """The coverage and precision `triage tune` expects of its policy (``tuning`` in
    policy.json): measured on its held-out test part when it certified one (with the
    precision's lower bound), else cross-validated; None when the adapter was not tuned."""
    test = tuning.get("test")
    point: dict[str, Any]
    if isinstance(test, dict) and isinstance(test.get("coverage"), int | float):
        point = {"coverage": test["coverage"], "precision": test["precision"]}
        point |= {"basis": "held-out test part"}
        if isinstance(test.get("lower"), int | float):
            point["lower"] = test["lower"]
    elif isinstance(tuning.get("cv_coverage"), int | float):
        point = {"coverage": tuning["cv_coverage"], "precision": tuning["cv_precision"]}
        point |= {"basis": "cross-validated"}
    else:
        return None
    target = (tuning.get("target") or {}).get("precision")
    return point | ({"target": target} if isinstance(target, int | float) else {})


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
