"""Training the top layers on cached frozen-layer output computes what the whole model computes."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models import layer_cache
from models.batches import logits_of_token_ids
from models.classifier import MEAN_POOL, build_model
from models.data import LabelledText, examples_dir, read_labelled
from models.layer_cache import TopLayers
from models.training import HELDOUT_FILE, read_heldout
from models.truncation import encode

TEXTS = [r.text for r in read_labelled(examples_dir() / "banking77" / "test.csv")[:40:2]]
TEXTS += ["card?", "why " * 200]  # one token and a text the cut shortens


@pytest.fixture(scope="module")
def lora_model():
    """MiniLM with LoRA on its top two layers (of six), the adapter made to matter."""
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(0)
    model, tokenizer = build_model("all-MiniLM-L6-v2", 4, MEAN_POOL, torch.device("cpu"))
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=4,
        target_modules=["query", "key", "value", "dense"],
        layers_to_transform=[4, 5],
        layers_pattern="layer",
    )
    model = get_peft_model(model, lora)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # zero at init: make the adapter change something
            param.data.normal_(0.0, 0.05)
    return model, tokenizer


@pytest.mark.slow
@pytest.mark.parametrize("cached", [True, False])
def test_split_model_gives_the_whole_models_logits(lora_model, cached, monkeypatch):
    model, tokenizer = lora_model
    ids = encode(tokenizer, TEXTS, 64)
    whole = logits_of_token_ids(
        model, ids, pad_id=tokenizer.pad_token_id, device=torch.device("cpu"), batch_size=8
    )
    if not cached:
        monkeypatch.setattr(layer_cache, "CACHE_BYTES", 0)
    split = TopLayers.of(model, 2, tokenizer.pad_token_id)
    assert split is not None and split.n_bottom == 4
    feats = split.features(ids)
    assert feats.cached is cached
    # float16 copies of the frozen output: close, not bit-equal.
    np.testing.assert_allclose(feats.logits(), whole, atol=2e-3)
    assert (feats.logits().argmax(axis=1) == whole.argmax(axis=1)).all()


@pytest.mark.slow
def test_only_the_top_layers_train_and_get_gradients(lora_model):
    model, tokenizer = lora_model
    trained = {n.split(".layer.")[1].split(".")[0] for n, p in model.named_parameters()
               if p.requires_grad and ".layer." in n}  # fmt: skip
    assert trained == {"4", "5"}
    split = TopLayers.of(model, 2, tokenizer.pad_token_id)
    assert split is not None
    feats = split.features(encode(tokenizer, TEXTS[:6], 32))
    model.train()
    split.logits(*feats.batch([0, 1, 2])).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    model.zero_grad(set_to_none=True)
    model.eval()


@pytest.mark.slow
def test_no_split_for_all_layers_or_other_models(lora_model):
    model, tokenizer = lora_model
    assert TopLayers.of(model, None, tokenizer.pad_token_id) is None
    assert TopLayers.of(model, 6, tokenizer.pad_token_id) is None
    assert TopLayers.of(torch.nn.Linear(2, 2), 2, 0) is None


def test_heldout_file_is_read_under_its_fixed_keys_and_the_old_ones(tmp_path: Path):
    new, old = tmp_path / "new", tmp_path / "old"
    new.mkdir()
    old.mkdir()
    (new / HELDOUT_FILE).write_text(json.dumps({"text": "a b", "label": "x"}) + "\n")
    (old / HELDOUT_FILE).write_text(json.dumps({"text": "c", "category": "y"}) + "\n")
    assert read_heldout(new) == [LabelledText("a b", "x")]
    assert read_heldout(old) == [LabelledText("c", "y")]
