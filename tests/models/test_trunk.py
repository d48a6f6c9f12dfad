"""The shared trunk: which layers two encoders share, and that the twin computes what each does.

On the real all-MiniLM-L6-v2 (the embedder, and the classifier's base): copies with some
weights changed stand in for a merged adapter, so no training is needed here. The served path
(adapter, ONNX, the embedder reading the twin's vectors) is in tests/models/test_inference.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from models.embedder import load_encoder
from models.inference import MeanPooled
from models.settings import PACKAGED_MINILM
from models.trunk import Twin, shared_layers


@pytest.fixture(scope="module")
def encoder() -> Any:
    return load_encoder(PACKAGED_MINILM)


def changed(encoder: Any, layer: int | None) -> Any:
    """A copy of `encoder` with one weight of `layer` (None: the embeddings) nudged."""
    out = copy.deepcopy(encoder)
    module = out.embeddings if layer is None else out.encoder.layer[layer]
    with torch.no_grad():
        next(module.parameters()).view(-1)[0] += 1e-3
    return out


def test_the_layers_under_the_first_changed_one_are_shared(encoder: Any) -> None:
    assert shared_layers(changed(encoder, 4), encoder) == 4
    assert shared_layers(changed(encoder, 0), encoder) == 0
    assert shared_layers(changed(encoder, None), encoder) == 0  # embeddings differ: nothing
    # Nothing changed: every layer but one is shared (each branch keeps a layer of its own).
    assert shared_layers(encoder, copy.deepcopy(encoder)) == 5


def test_other_shapes_share_nothing(encoder: Any) -> None:
    other = copy.deepcopy(encoder)
    other.config.hidden_act = "relu"
    assert shared_layers(other, encoder) == 0
    assert shared_layers(torch.nn.Linear(2, 2), encoder) == 0


def test_the_twin_gives_the_classifiers_logits_and_the_embedders_vectors(encoder: Any) -> None:
    classifier = changed(encoder, 4)
    classifier.encoder.layer[5].output.dense.weight.data.mul_(1.1)  # its top differs all over
    head = torch.nn.Linear(encoder.config.hidden_size, 3)
    twin = Twin(classifier, head, encoder, shared_layers(classifier, encoder)).eval()
    ids = torch.randint(1000, 5000, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # padded rows must pool as the models alone do
    mask[2, 3:] = 0
    with torch.inference_mode():
        out = twin(ids, mask)
        logits = MeanPooled(classifier, head).eval()(ids, mask)
        vectors = MeanPooled(encoder).eval()(ids, mask)
    assert out.shape == (3, 3 + encoder.config.hidden_size)
    assert torch.allclose(out[:, :3], logits, atol=1e-5)
    assert torch.allclose(out[:, 3:], vectors, atol=1e-5)
    # And the branches are really apart: the classifier's top is not the embedder's.
    with torch.inference_mode():
        assert not torch.allclose(MeanPooled(classifier)(ids, mask), vectors, atol=1e-3)
