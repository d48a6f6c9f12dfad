"""The one assembly of the served models from settings: the worker and `triage eval`/`tune` alike.

`worker.resources` keeps what these build, once per process; `models.workbench` builds the same
for eval and tune, so eval measures the worker's loading, batching and device choices. Heavy
imports happen inside: importing this module loads no torch (a worker's parent must not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.cascade import Search, TaskModels
from models.settings import ModelSettings
from producer.errors import ModelError
from producer.schemas import Neighbour

if TYPE_CHECKING:
    from models.adapters import AdapterSet
    from models.classifier import Batching, Classifier
    from models.embedder import Embedder
    from models.index import TicketIndex

#: Texts per embedder pass on a CPU (see `load_embedder`).
CPU_EMBED_BATCH = 16


def batching(s: ModelSettings) -> Batching:
    """How the served classifiers batch (`Classifier.load` and `AdapterSet` alike)."""
    from models.classifier import Batching

    return Batching(
        max_length=s.max_length,
        batch_size=s.batch_size,
        max_batch_tokens=s.max_batch_tokens or None,  # 0 in the settings: no cap
    )


def load_classifier(adapter_dir: Path, s: ModelSettings) -> Classifier:
    """One task's adapter on its base, merged: a process serving one adapter runs it merged
    (faster, same predictions; `Classifier.merge_adapter`)."""
    from models.classifier import Classifier

    clf = Classifier.load(adapter_dir, device=s.device, batching=batching(s))
    clf.merge_adapter()
    return clf


def load_adapter_set(adapter_dirs: Mapping[str, Path], s: ModelSettings) -> AdapterSet:
    """Several tasks' adapters on one base, switched per batch (see `shared_base_tasks`)."""
    from models.adapters import AdapterSet

    return AdapterSet(adapter_dirs, device=s.device, batching=batching(s))


def shared_base_tasks(s: ModelSettings) -> tuple[str, ...]:
    """The largest group (two or more) of configured tasks whose adapters share base and head.

    Tasks without a readable adapter are left out (they fail on their own when used).
    """
    from models.classifier import read_meta

    groups: dict[tuple[str, str], list[str]] = {}
    for task in s.labels:
        try:
            meta = read_meta(s.adapter_dir(task))
        except ModelError:
            continue
        groups.setdefault((str(meta["base_model"]), str(meta["head"])), []).append(task)
    largest = max(groups.values(), key=len, default=[])
    return tuple(largest) if len(largest) > 1 else ()


def classifier_models(clf: Classifier) -> TaskModels:
    """What the first pass needs of a lone classifier."""
    return TaskModels(labels=clf.labels, predict_proba=clf.predict_proba, version=clf.version)


def adapter_set_models(adapters: AdapterSet, task: str) -> TaskModels:
    """What the first pass needs of one task of an adapter set."""
    return TaskModels(
        labels=adapters.labels[task],
        predict_proba=partial(adapters.predict_proba, task),
        version=adapters.versions[task],
    )


def load_embedder(s: ModelSettings) -> Embedder:
    """The retrieval embedder, on the classifier's device (a GPU worker must not embed on its
    CPU); on a CPU in narrower batches."""
    from models.base_models import pick_device
    from models.embedder import Embedder

    device = pick_device(s.device)
    # sentence-transformers pads each batch to its longest text: on a CPU, narrower batches pad
    # far less (64 Banking77 tickets: 17 ms each in one batch, 8 in batches of 16, 2 cores).
    batch = s.batch_size if device.type == "cuda" else min(s.batch_size, CPU_EMBED_BATCH)
    return Embedder(s.embedder, device=str(device), batch_size=batch)


def open_index(s: ModelSettings) -> TicketIndex:
    """The configured ticket index: the Qdrant server at `qdrant_url`, else local mode."""
    from models.index import TicketIndex

    key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
    if s.qdrant_url:
        return TicketIndex(url=s.qdrant_url, api_key=key)
    return TicketIndex(path=s.qdrant_path)


def index_search(index: TicketIndex, task: str) -> Search:
    """The first pass's search: `task`'s collection of `index`."""

    def search(
        vectors: np.ndarray, k: int, exclude: Sequence[tuple[str, str]]
    ) -> list[list[Neighbour]]:
        return index.neighbours(task, vectors, k, exclude)

    return search
