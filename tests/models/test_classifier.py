"""LoRA classifier: train on a tiny Banking77 sample, save, reload, predict; Llama path; errors."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.classifier import META_FILE, Batching, Classifier
from models.data import LabelledText, examples_dir, read_labelled, write_labelled
from models.training import (
    HELDOUT_FILE,
    TrainConfig,
    _save_atomically,
    _split,
    read_heldout,
    train,
)
from models.truncation import pick_max_length, share_cut, token_lengths
from producer.errors import ModelError
from producer.labelset import LabelSet
from tests.factories import sample

BANKING = examples_dir() / "banking77"
N_LABELS, PER_LABEL = 10, 8


@pytest.fixture(scope="module")
def banking() -> tuple[LabelSet, list[LabelledText], list[LabelledText]]:
    rows = read_labelled(BANKING / "train.csv")
    names = sorted({r.label for r in rows})[:N_LABELS]
    labels = LabelSet.from_dict({"task": "category", "labels": [{"name": n} for n in names]})
    return (
        labels,
        sample(BANKING / "train.csv", names, PER_LABEL),
        sample(BANKING / "test.csv", names, 5),
    )


@pytest.fixture(scope="module")
def adapter(banking, tmp_path_factory) -> Path:
    labels, train_rows, _ = banking
    out = tmp_path_factory.mktemp("adapters") / "category"
    config = TrainConfig(
        labels=labels,
        train_examples=train_rows,
        epochs=5,
        batch_size=16,
        learning_rate=3e-3,
        patience=5,
        train_layers=3,  # the frozen lower three run once per text
    )
    report = train(config, out, progress=False)
    assert report.train_examples + report.eval_examples == N_LABELS * PER_LABEL
    return out


@pytest.mark.slow
def test_adapter_dir_holds_only_the_adapter(adapter, banking):
    names = {p.name for p in adapter.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "labels.json", META_FILE} <= names
    assert "model.safetensors" not in names
    size = sum(p.stat().st_size for p in adapter.iterdir())
    assert size < 10_000_000  # the MiniLM base alone is ~90 MB
    meta = json.loads((adapter / META_FILE).read_text())
    assert meta["base_model"] == "all-MiniLM-L6-v2"
    assert meta["head"] == "mean_pool"
    assert meta["config"]["train_examples"] == N_LABELS * PER_LABEL
    assert set(meta["metrics"]) >= {"eval_accuracy", "ece_before", "ece_after", "temperature"}
    # What `triage drift` compares traffic with: every training label and held-out ticket counted.
    assert sum(meta["label_distribution"].values()) == meta["metrics"]["train_examples"]
    assert len(meta["label_distribution"]) == N_LABELS
    assert sum(meta["heldout_confidence"]) == meta["metrics"]["eval_examples"]
    # No max_length given: picked from the training texts, and the worker serves with it.
    held = {r.text for r in read_heldout(adapter)}
    trained = [r.text for r in banking[1] if r.text not in held]
    lengths = token_lengths(Classifier.load(adapter).tokenizer, trained, 512)
    picked = pick_max_length(lengths, share=0.95)
    assert meta["config"]["max_length"] == meta["metrics"]["max_length"] == picked
    assert meta["metrics"]["share_cut"] == pytest.approx(share_cut(lengths, picked))
    assert meta["config"]["train_layers"] == 3
    assert meta["heldout"] == {"file": HELDOUT_FILE, "text_field": "text", "label_field": "label"}
    rows = [json.loads(line) for line in (adapter / HELDOUT_FILE).read_text().splitlines()]
    assert len(rows) == meta["metrics"]["eval_examples"]
    assert all(set(row) == {"text", "label"} for row in rows)
    assert read_heldout(adapter) == [LabelledText(r["text"], r["label"]) for r in rows]
    assert not [p for p in adapter.parent.iterdir() if p.name.startswith(".")]  # no temp dirs


@pytest.mark.slow
def test_predicts_better_than_chance_and_reloads_identically(adapter, banking):
    labels, _, held_out = banking
    first = Classifier.load(adapter, batching=Batching(batch_size=16))
    assert first.labels.names == labels.names
    assert first.base_model == "all-MiniLM-L6-v2"
    assert first.version.startswith("category@")
    texts = [r.text for r in held_out]
    probs = first.predict_proba(texts)
    truth = np.array([labels.index[r.label] for r in held_out])
    assert (probs.argmax(axis=1) == truth).mean() > 3 / N_LABELS  # chance is 1/10
    again = Classifier.load(adapter, batching=Batching(batch_size=16)).predict_proba(texts)
    np.testing.assert_allclose(again, probs, atol=1e-6)


@pytest.mark.slow
def test_predict_proba_keeps_order_and_sums_to_one(adapter):
    # Several batches, reordered by length.
    clf = Classifier.load(adapter, batching=Batching(batch_size=3))
    texts = [
        "card?",
        "My card has still not arrived after two weeks, what should I do now?",
        "exchange rate",
        "Why was I charged an extra fee on my statement this month?",
        "pin",
    ]
    probs = clf.predict_proba(texts)
    assert probs.shape == (len(texts), N_LABELS)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    one_by_one = np.vstack([clf.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(probs, one_by_one, atol=1e-5)
    calibrated = np.exp(clf.predict_logits(texts) / clf.temperature)
    np.testing.assert_allclose(probs, calibrated / calibrated.sum(axis=1, keepdims=True), atol=1e-5)
    assert clf.predict_proba([]).shape == (0, N_LABELS)


def test_llama_path_trains_and_predicts(tiny_llama, banking, tmp_path):
    labels, train_rows, held_out = banking
    config = TrainConfig(
        labels=labels,
        train_examples=train_rows[:40],
        base_model=str(tiny_llama),
        epochs=2,
        batch_size=8,
        lora_r=4,
        lora_alpha=8,
        max_length=32,
    )
    assert train(config, tmp_path / "llama", progress=False).epochs_run >= 1
    meta = json.loads((tmp_path / "llama" / META_FILE).read_text())
    assert meta["head"] == "sequence_classification"
    assert meta["base_model"] == str(tiny_llama)
    clf = Classifier.load(tmp_path / "llama")
    assert clf.tokenizer.pad_token == "[SEP]"
    assert clf.model.config.pad_token_id == clf.tokenizer.pad_token_id
    probs = clf.predict_proba([r.text for r in held_out[:7]])
    assert probs.shape == (7, N_LABELS)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_missing_or_broken_adapter_dir_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match=r"does not exist.*triage train"):
        Classifier.load(tmp_path / "nope")
    with pytest.raises(ModelError, match="missing"):
        Classifier.load(tmp_path)
    (tmp_path / META_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not readable JSON"):
        Classifier.load(tmp_path)


def test_atomic_save_leaves_old_adapter_on_failure(tmp_path):
    out = tmp_path / "adapter"
    out.mkdir()
    (out / "old").write_text("v1")

    def crash(tmp: Path) -> None:
        (tmp / "half").write_text("...")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _save_atomically(out, crash)
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]
    assert (out / "old").read_text() == "v1"
    _save_atomically(out, lambda tmp: (tmp / "new").write_text("v2"))
    assert [p.name for p in out.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]


def test_config_checks_name_the_bad_value(banking):
    labels, train_rows, _ = banking
    with pytest.raises(ValueError, match=r"learning_rate=0"):
        TrainConfig(labels=labels, train_examples=train_rows, learning_rate=0)
    with pytest.raises(ValueError, match=r"outside the label set.*'nope'"):
        TrainConfig(labels=labels, train_examples=[LabelledText("hi", "nope")])
    with pytest.raises(ValueError, match="train_examples is empty"):
        TrainConfig(labels=labels, train_examples=[])


def test_split_is_stratified_and_the_cap_keeps_label_shares(banking):
    labels, train_rows, _ = banking
    config = TrainConfig(labels=labels, train_examples=train_rows, max_train_examples=40)
    train_set, eval_set = _split(config, np.random.default_rng(0))
    assert len(train_set) + len(eval_set) == 40
    for name in labels.names:  # 8 per label capped to 4: 3 train + 1 eval each
        assert sum(r.label == name for r in train_set) == 3
        assert sum(r.label == name for r in eval_set) == 1


@pytest.mark.slow
def test_merged_adapter_predicts_the_same(adapter: Path) -> None:
    texts = ["my card has not arrived yet", "what is the exchange rate", "i lost my card"]
    clf = Classifier.load(adapter)
    before = clf.predict_proba(texts)
    clf.merge_adapter()
    assert not hasattr(clf.model, "merge_and_unload")
    np.testing.assert_allclose(clf.predict_proba(texts), before, atol=1e-4)


@pytest.mark.slow
def test_training_off_a_terminal_logs_progress_with_loss_and_accuracy(
    banking, tmp_path, monkeypatch, caplog
):
    from models import training

    labels, train_rows, _ = banking
    monkeypatch.setattr(training, "PROGRESS_EVERY_S", 0.0)  # a line per step
    caplog.set_level(logging.INFO, logger="triage.progress")
    config = TrainConfig(labels=labels, train_examples=train_rows, epochs=2, train_layers=2)
    train(config, tmp_path / "adapter", progress=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "triage.progress"]
    steps = [line for line in lines if line.startswith("training: ")]
    assert any(line.startswith("frozen layers: ") for line in lines)
    assert len(steps) >= 2 * 2  # two epochs of two batches, and the closing line
    assert "epoch 2/2, loss " in steps[-2] and "held-out accuracy 0." in steps[-2]
    # Mid-epoch the accuracy shown is the last epoch's, and says so.
    assert any("epoch 2/2" in line and "after epoch 1" in line for line in steps)
    assert "after epoch 2" in steps[-2]
    assert steps[-1].startswith("training: done")


@pytest.mark.slow
def test_training_logs_progress_where_no_logging_is_set_up(banking, tmp_path):
    # The demo calls train(progress=True) with no logging configured, its output often a file.
    labels, train_rows, _ = banking
    labels.save(tmp_path / "labels.json")
    write_labelled(tmp_path / "train.jsonl", train_rows)
    script = (
        "from models.data import read_labelled\n"
        "from models.training import TrainConfig, train\n"
        f"rows = read_labelled({str(tmp_path / 'train.jsonl')!r})\n"
        f"config = TrainConfig(labels={str(tmp_path / 'labels.json')!r}, train_examples=rows,"
        " epochs=1, train_layers=2)\n"
        f"train(config, {str(tmp_path / 'adapter')!r}, progress=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "training: done" in done.stderr
    assert "frozen layers: done" in done.stderr
