"""`triage eval` measures what the worker runs: one assembly of models, the same labels.

A small MiniLM adapter (the CPU default's mean-pool head) and a seeded local Qdrant; the eval
path (`models.workbench`) and the worker path (`worker.resources`, what the classify task's first
pass calls) label the same tickets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from models import assembly
from models.cascade import first_pass
from models.data import examples_dir
from models.index import IndexedTicket
from models.settings import ModelSettings
from models.training import TrainConfig, train
from models.workbench import load, run_eval
from producer import LabelSet, Ticket
from tests.factories import sample

BANKING = examples_dir() / "banking77"
NAMES = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "pin_blocked"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    labels = LabelSet.from_dict({"task": "category", "labels": [{"name": n} for n in NAMES]})
    out = tmp_path_factory.mktemp("assembly") / "category"
    config = TrainConfig(
        labels=labels,
        train_examples=sample(BANKING / "train.csv", NAMES, 8),
        epochs=2,
        learning_rate=3e-3,
        max_length=32,
        num_threads=1,  # two threads fight over a busy 2-core machine
    )
    train(config, out, progress=False)
    return out


@pytest.fixture
def configured(
    adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModelSettings]:
    """Settings of a worker serving the adapter, with batching unlike the defaults (eval used to
    ignore the token budget), and its local index seeded with human-labelled tickets."""
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIAGE_LABELS", json.dumps({"category": str(adapter / "labels.json")}))
    monkeypatch.setenv("TRIAGE_ADAPTERS", json.dumps({"category": str(adapter)}))
    monkeypatch.setenv("TRIAGE_BATCH_SIZE", "32")
    monkeypatch.setenv("TRIAGE_MAX_BATCH_TOKENS", "96")
    _clear_resources()
    s = ModelSettings()
    rows = sample(BANKING / "train.csv", NAMES, 12)[::2]
    index = assembly.open_index(s)
    index.upsert(
        "category",
        [IndexedTicket(f"seed-{i}", "seed", r.label, r.text, "human") for i, r in enumerate(rows)],
        assembly.load_embedder(s).embed([r.text for r in rows]),
    )
    index.close()
    yield s
    _clear_resources()


def test_eval_and_the_worker_give_the_same_labels_and_confidences(
    adapter: Path, configured: ModelSettings
) -> None:
    from worker import resources

    examples = sample(BANKING / "test.csv", NAMES, 5)
    # Eval first: it opens and closes the local index the worker then opens (one client at a time).
    report = run_eval(adapter, configured, examples, None, configs=("cascade",))
    evaluated = report.runs["cascade"].outcomes
    # The tickets as `Harness.run` builds them (the id matters: its own is left out of a search).
    tickets = [
        Ticket(id=f"eval-{i}", source="eval", body=ex.text, task="category")
        for i, ex in enumerate(examples)
    ]
    served = first_pass(
        tickets,
        task=resources.task_models("category"),
        embed=resources.embedder().embed,
        search=resources.search("category"),
        policy=resources.policy("category"),
    )
    assert [o.label for o in evaluated] == [f.label for f in served]
    # One batch each (20 tickets, batch size 32), cut alike by the same code: equal to float
    # precision.
    assert [o.confidence for o in evaluated] == pytest.approx([f.confidence for f in served])
    assert [o.auto for o in evaluated] == [not f.needs_escalation for f in served]
    assert len({round(f.confidence, 3) for f in served}) > 1  # real, varied confidences
    assert all(f.neighbours for f in served)  # the seeded index took part


def test_eval_loads_with_the_workers_device_batching_and_merged_adapter(
    adapter: Path, configured: ModelSettings
) -> None:
    from peft import PeftModel

    from models.base_models import pick_device
    from worker import resources

    m = load(adapter, configured, index_data=[])
    m.index.close()
    clf = m.classifier
    assert (clf.batching.batch_size, clf.batching.max_batch_tokens) == (32, 96)
    assert clf.device == pick_device("auto")
    assert not isinstance(clf.model, PeftModel)  # merged, as the worker serves a lone adapter
    worker_embedder = resources.embedder()
    assert (m.embedder.device, m.embedder.batch_size) == (
        worker_embedder.device,
        worker_embedder.batch_size,
    )
    if clf.device.type == "cpu":  # narrower embedder batches on a CPU (eval used 64)
        assert m.embedder.batch_size == assembly.CPU_EMBED_BATCH


def _clear_resources() -> None:
    from models.settings import get_settings
    from worker import resources

    resources.close_all()
    get_settings.cache_clear()
    resources.task_models.cache_clear()
    resources.adapter_set.cache_clear()
    resources.embedder.cache_clear()
    resources.policy.cache_clear()
