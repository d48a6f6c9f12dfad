"""What `bench.second_pass` and `bench.leave_out` share: an adapter's models over an in-memory
index of labelled tickets, the first pass over a test file in batches, and its figures.

The models are the worker's (`models.workbench.load`, `models.assembly`); the classifier's and
the embedder's outputs are memoised by text, so several runs over the same tickets pay once.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.cascade import Embed, FirstPass, Policy, Search, TaskModels, first_pass
from models.data import LabelledText
from producer.schemas import Ticket

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: The first pass's batch (the classify worker's default).
BATCH = 64


@dataclass
class Models:
    task: TaskModels
    embed: Embed
    policy: Policy
    index: Any  # models.index.TicketIndex
    name: str  # the collection's task name


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--adapter", type=Path, default=Path(".triage/adapters/category"))
    parser.add_argument("--index-data", type=Path, default=Path("examples/banking77/train.csv"))
    parser.add_argument("--test", type=Path, default=Path("examples/banking77/test.csv"))
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--label-field", default="category")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N test tickets only")
    return parser


def read(path: Path, args: argparse.Namespace) -> list[LabelledText]:
    from models.data import read_labelled

    return read_labelled(path, (args.text_field,), args.label_field)


def load_models(args: argparse.Namespace, index_rows: Sequence[LabelledText]) -> Models:
    """The adapter, the embedder and a fresh in-memory index of `index_rows` (people's labels)."""
    from models.assembly import classifier_models, load_classifier, load_embedder
    from models.cascade import load_policy
    from models.evaluation import cached, cached_task
    from models.index import TicketIndex
    from models.settings import get_settings

    settings = get_settings()
    clf = load_classifier(args.adapter, settings)
    embedder = load_embedder(settings)
    task = classifier_models(clf)
    task = cached_task(task)
    embed = cached(embedder.embed)
    policy = load_policy(args.adapter, settings)
    models = Models(task, embed, policy, TicketIndex(), task.labels.task)
    fill(models, models.name, index_rows)
    return models


def fill(models: Models, name: str, rows: Sequence[LabelledText]) -> None:
    """Index `rows` as people's labels in collection `name` (vectors embedded once per text)."""
    from models.index import IndexedTicket

    indexed = [
        IndexedTicket(f"row-{i}", "index-data", r.label, r.text, "human")
        for i, r in enumerate(rows)
    ]
    for start in range(0, len(indexed), 512):
        chunk = indexed[start : start + 512]
        models.index.upsert(name, chunk, models.embed([r.text for r in chunk]))


def search_of(models: Models, name: str | None = None) -> Search:
    from models.assembly import index_search

    return index_search(models.index, name or models.name)


def tickets_of(rows: Sequence[LabelledText], source: str) -> list[Ticket]:
    return [Ticket(id=f"{source}-{i}", source=source, body=r.text) for i, r in enumerate(rows)]


def run_pass(
    tickets: Sequence[Ticket], *, task: TaskModels, embed: Embed, search: Search, policy: Policy
) -> list[FirstPass]:
    out: list[FirstPass] = []
    for start in range(0, len(tickets), BATCH):
        out += first_pass(
            tickets[start : start + BATCH], task=task, embed=embed, search=search, policy=policy
        )
    return out


def figures(firsts: Sequence[FirstPass], truth: Sequence[str]) -> dict[str, float]:
    """Coverage, auto-precision and accuracy (a review's suggestion counts as its label)."""
    auto = np.array([not fp.needs_escalation for fp in firsts])
    right = np.array([fp.label == t for fp, t in zip(firsts, truth, strict=True)])
    return {
        "tickets": len(firsts),
        "coverage": round(float(auto.mean()), 4) if len(firsts) else 0.0,
        "auto_precision": round(float(right[auto].mean()), 4) if auto.any() else 0.0,
        "auto_errors": int((auto & ~right).sum()),
        "accuracy": round(float(right.mean()), 4) if len(firsts) else 0.0,
        "out_of_scope": int(sum(fp.out_of_scope is not None for fp in firsts)),
    }
