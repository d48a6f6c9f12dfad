"""The one assembly of the served models from settings: the worker and `triage eval`/`tune` alike.

`worker.resources` keeps what these build, once per process; `models.workbench` builds the same
for eval and tune, so eval measures the worker's loading, batching, device and CPU inference
choices. The classifier and the embedder of one tokenizer share a `SharedTokens`: the first pass
tokenises each ticket once for both. Heavy imports happen inside: importing this module loads no
torch (a worker's parent must not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache, partial
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
    from models.tokens import SharedTokens


def batching(s: ModelSettings, max_length: int | None = None) -> Batching:
    """How the served classifiers and the embedder batch (`Classifier.load`, `AdapterSet`): at
    most `max_length` tokens a ticket, else the settings', else `TRAINED_MAX_LENGTH`."""
    from models.classifier import TRAINED_MAX_LENGTH, Batching

    return Batching(
        max_length=s.max_length or max_length or TRAINED_MAX_LENGTH,
        batch_size=s.batch_size,
        max_batch_tokens=s.max_batch_tokens or None,  # 0 in the settings: no cap
    )


def load_classifier(adapter_dir: Path, s: ModelSettings) -> Classifier:
    """One task's adapter on its base, merged (faster, same predictions), reading as many
    tokens as it was trained on unless the settings say, run as ``cpu_inference`` says.

    Quantised on a CPU, over the embedder's own base, it shares the layers the adapter left
    alone with the embedder (`models.trunk`): one run gives the logits and the vectors."""
    from models.base_models import resolve_base_model
    from models.classifier import MEAN_POOL, Classifier, read_meta, trained_max_length
    from models.embedder import load_encoder, model_key

    cut = batching(s, trained_max_length(adapter_dir))
    clf = Classifier.load(adapter_dir, device=s.device, batching=cut)
    embedder = None
    if read_meta(adapter_dir)["head"] == MEAN_POOL:  # a decoder's tokenizer is its own
        clf.tokens = shared_tokens(clf.base_model)
        clf.tokens.widen(cut.max_length)
        path = resolve_base_model(s.embedder)
        if resolve_base_model(clf.base_model) == path and s.cpu_inference != "fp32":
            embedder = (model_key(path), load_encoder(s.embedder))
    clf.merge_adapter()
    clf.use_inference(s.cpu_inference, s.model_cache, embedder)
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
    return TaskModels(
        labels=clf.labels,
        predict_proba=clf.predict_proba,
        version=clf.version,
        predict_logits=clf.calibrated_logits,
        side_by_side=clf.inference == "onnx",
    )


def adapter_set_models(adapters: AdapterSet, task: str) -> TaskModels:
    """What the first pass needs of one task of an adapter set."""
    return TaskModels(
        labels=adapters.labels[task],
        predict_proba=partial(adapters.predict_proba, task),
        version=adapters.versions[task],
    )


def load_embedder(s: ModelSettings) -> Embedder:
    """The retrieval embedder, on the classifier's device (a GPU worker must not embed on its
    CPU), batched as the classifier (so the first pass plans batches once for both)."""
    from models.base_models import pick_device
    from models.embedder import Embedder

    cut = batching(s)
    return Embedder(
        s.embedder,
        device=str(pick_device(s.device)),
        batch_size=cut.batch_size,
        max_batch_tokens=cut.max_batch_tokens,
        inference=s.cpu_inference,
        cache_dir=s.model_cache,
        tokens=shared_tokens(s.embedder),
    )


def shared_tokens(base_model: str) -> SharedTokens:
    """This process's `SharedTokens` of the tokenizer of `base_model` (a stable name or a path):
    the classifier and the embedder of one base get the same one."""
    from models.base_models import resolve_base_model

    return _shared_tokens(str(resolve_base_model(base_model)))


@lru_cache
def _shared_tokens(path: str) -> SharedTokens:
    from transformers import AutoTokenizer

    from models.tokens import SharedTokens

    return SharedTokens(AutoTokenizer.from_pretrained(path))


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
