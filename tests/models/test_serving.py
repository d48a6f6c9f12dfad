"""Serving the classifier: batches cut by tokens, padding per batch, several tasks on one base.

A tiny random Llama (the MiniLM tokenizer, 2 layers) keeps the model parts to a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from models.batches import pad_batch, plan_batches
from models.classifier import Batching, Classifier, adapter_version, build_model, predict_logits
from models.data import examples_dir
from models.training import TrainConfig, train
from producer.labelset import LabelSet
from tests.factories import sample

BANKING = examples_dir() / "banking77"
TASKS = {
    "category": ["card_arrival", "exchange_rate", "pin_blocked", "top_up_failed"],
    "priority": ["lost_or_stolen_card", "cash_withdrawal_charge", "apple_pay_or_google_pay"],
}
TEXTS = [
    "card?",
    "I am still waiting on my card to arrive",
    "What exchange rate do you use when I pay in another currency abroad, and is there a fee?",
    "pin blocked",
    "My top up did not go through and I have no idea why it failed, please check my account",
    "hello",
]


@pytest.fixture(scope="module")
def adapters(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One adapter per task on the same tiny base (heads of 4 and 3 labels)."""
    root = tmp_path_factory.mktemp("serving")
    out = {}
    for task, names in TASKS.items():
        labels = LabelSet.from_dict({"task": task, "labels": [{"name": n} for n in names]})
        labels.save(root / f"{task}.json")
        config = TrainConfig(
            labels=labels,
            train_examples=sample(BANKING / "train.csv", names, 6),
            base_model=str(tiny_llama),
            epochs=1,
            batch_size=8,
            lora_r=4,
            lora_alpha=8,
            max_length=32,
            num_threads=1,
        )
        train(config, root / task, progress=False)
        out[task] = root / task
    return out


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch, adapters: dict[str, Path]) -> Iterator[None]:
    """Worker resources reading settings for both tasks; caches cleared around the test."""
    labels = {task: str(path / "labels.json") for task, path in adapters.items()}
    monkeypatch.setenv("TRIAGE_LABELS", json.dumps(labels))
    monkeypatch.setenv("TRIAGE_ADAPTERS", json.dumps({t: str(p) for t, p in adapters.items()}))
    monkeypatch.setenv("TRIAGE_DEVICE", "cpu")
    _clear_resources()
    yield
    _clear_resources()


def test_plan_batches_cover_every_item_once_shortest_first() -> None:
    lengths = [5, 1, 9, 3, 3, 7, 2]
    batches = plan_batches(lengths, batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)


def test_plan_batches_keep_padded_tokens_within_the_budget() -> None:
    lengths = [10] * 8 + [40] * 4 + [200]
    batches = plan_batches(lengths, batch_size=64, max_batch_tokens=80)
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) * longest <= 80 or len(batch) == 1
    assert [len(b) for b in batches] == [8, 2, 2, 1]  # short ones fill, long ones go in pairs
    assert batches[-1] == [12]  # over the budget on its own: alone, not dropped
    assert plan_batches([], batch_size=4, max_batch_tokens=10) == []
    with pytest.raises(ValueError, match="max_batch_tokens=0"):
        plan_batches([1], batch_size=4, max_batch_tokens=0)


def test_plan_batches_with_a_pass_overhead_do_not_pad_short_tickets_to_a_long_one() -> None:
    lengths = [8] * 16 + [57] + [12] * 16
    batches = plan_batches(lengths, batch_size=64, overhead_tokens=32)
    # One batch: 33 x 57 = 1,881 padded tokens. Cut by length: 16 x 8 + 16 x 12 + 57 + 3 x 32.
    assert [sorted({lengths[i] for i in b}) for b in batches] == [[8], [12], [57]]
    assert plan_batches(lengths, batch_size=64, overhead_tokens=10_000) == [
        sorted(range(len(lengths)), key=lengths.__getitem__)
    ]  # passes dear: one batch, as without an overhead
    budget = plan_batches(lengths, batch_size=8, max_batch_tokens=64, overhead_tokens=0)
    for b in budget:
        assert len(b) <= 8
        assert len(b) * max(lengths[i] for i in b) <= 64 or len(b) == 1
    assert sorted(i for b in budget for i in b) == list(range(len(lengths)))


def test_pad_batch_masks_only_the_padding() -> None:
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, left_pad=True)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.slow
def test_logits_do_not_depend_on_how_tickets_are_batched(tiny_llama: Path) -> None:
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    model, tokenizer = build_model(str(tiny_llama), 3, "sequence_classification", cpu)

    def logits(texts: list[str], **cut: int) -> np.ndarray:
        batching = Batching(max_length=32, **cut)
        return predict_logits(model, tokenizer, texts, device=cpu, batching=batching)

    one_by_one = logits(TEXTS, batch_size=1)
    wide = logits(TEXTS, batch_size=64)
    budget = logits(TEXTS, batch_size=64, max_batch_tokens=40)
    assert one_by_one.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(wide, one_by_one, atol=1e-5)
    np.testing.assert_allclose(budget, one_by_one, atol=1e-5)
    assert logits([], batch_size=4).shape == (0, 3)


@pytest.mark.slow
def test_tasks_on_one_base_are_served_from_one_adapter_set(
    serving: None, adapters: dict[str, Path]
) -> None:
    from worker import resources

    served = {task: resources.task_models(task) for task in TASKS}
    assert resources.adapter_set.cache_info().currsize == 1  # one base in memory
    assert resources.adapter_set().tasks == list(TASKS)
    for task in [*TASKS, "category"]:  # switching back gives the first adapter again
        probs = served[task].predict_proba(TEXTS)
        alone = Classifier.load(adapters[task], device="cpu").predict_proba(TEXTS)
        assert probs.shape == (len(TEXTS), len(TASKS[task]))
        np.testing.assert_allclose(probs, alone, atol=1e-5)
        assert served[task].version == adapter_version(adapters[task])
        assert served[task].labels.names == TASKS[task]


@pytest.mark.slow
def test_a_lone_task_gets_its_adapter_merged(
    serving: None, adapters: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import resources

    monkeypatch.setenv("TRIAGE_ADAPTERS", json.dumps({"category": str(adapters["category"])}))
    _clear_resources()
    served = resources.task_models("category")
    assert resources.adapter_set.cache_info().currsize == 0
    alone = Classifier.load(adapters["category"], device="cpu").predict_proba(TEXTS)
    np.testing.assert_allclose(served.predict_proba(TEXTS), alone, atol=1e-4)


@pytest.mark.slow
def test_the_token_budget_setting_reaches_the_model(
    serving: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import resources

    monkeypatch.setenv("TRIAGE_MAX_BATCH_TOKENS", "64")
    _clear_resources()
    assert resources.adapter_set().batching.max_batch_tokens == 64
    monkeypatch.setenv("TRIAGE_MAX_BATCH_TOKENS", "0")  # no cap
    _clear_resources()
    assert resources.adapter_set().batching.max_batch_tokens is None


def test_a_parent_with_cuda_initialised_refuses_to_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.process import check_no_cuda_before_fork

    check_no_cuda_before_fork()  # no CUDA here: nothing to refuse
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(RuntimeError, match="load lazily"):
        check_no_cuda_before_fork()


def test_a_prefork_worker_stops_before_forking_from_a_cuda_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celery.concurrency.prefork import TaskPool
    from celery.signals import worker_init

    import worker.app  # noqa: F401 (connects the check)

    class Worker:  # what Celery sends: the WorkController, its pool not yet resolved
        def __init__(self, pool_cls: object) -> None:
            self.pool_cls = pool_cls

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    worker_init.send(sender=Worker("solo"))  # no fork: nothing to refuse
    for pool in ("prefork", TaskPool):
        with pytest.raises(SystemExit, match="CUDA was initialised"):
            worker_init.send(sender=Worker(pool))


def test_the_worker_parent_does_not_import_torch() -> None:
    # What the main process of `triage worker` imports before its pool forks: no torch, so no
    # CUDA either; models load in the process that serves them.
    code = (
        "import sys, cli.main, worker.app, worker.tasks, worker.runner; "
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_heap_is_trimmed_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker import process

    trims: list[int] = []
    clock = [1000.0]
    monkeypatch.setattr(process, "_libc", lambda: SimpleNamespace(malloc_trim=trims.append))
    monkeypatch.setattr(process.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(process, "_last_trim", [0.0])
    process.trim_heap()
    process.trim_heap()
    clock[0] += process.TRIM_EVERY_S
    process.trim_heap()
    assert trims == [0, 0]


def _clear_resources() -> None:
    from models.settings import get_settings
    from worker import resources

    get_settings.cache_clear()
    for cached in (resources.task_models, resources.adapter_set, resources.policy):
        cached.cache_clear()
